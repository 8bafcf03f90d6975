using SdPipeline.Images;

namespace SdPipeline.Tests.Images;

public sealed class ImageCodecTests
{
    [Test]
    public void PngText_Should_RoundTrip_And_KeepTheImageDecodable()
    {
        var image = new RgbImage(4, 3);
        image.Set(1, 2, 200, 10, 30);
        var text = new Dictionary<string, string> { ["prompt"] = "a red circle on a blue background", ["seed"] = "42" };

        byte[] png = ImageCodec.EncodePng(image, text);

        Assert.That(PngText.Read(png), Is.EqualTo(text));
        var decoded = ImageCodec.DecodeRgb(png);
        Assert.That(decoded.Pixels, Is.EqualTo(image.Pixels));
    }

    [Test]
    public void PngText_Should_KeepTextLatin1CannotHold_InAnInternationalChunk()
    {
        var text = new Dictionary<string, string> { ["parameters"] = "富士山の夕焼け, Ölgemälde\nSteps: 20", ["seed"] = "7" };

        byte[] png = ImageCodec.EncodePng(new RgbImage(2, 2), text);

        Assert.That(PngText.Read(png), Is.EqualTo(text), "not folded to '?' as a tEXt chunk would have to");
        Assert.That(System.Text.Encoding.ASCII.GetString(png), Does.Contain("iTXtparameters").And.Contain("tEXtseed"), "iTXt only where Latin-1 cannot hold the text, as Pillow writes");
    }

    [Test]
    public void DecodeRgb_Should_Throw_When_DataIsTruncated()
    {
        var image = new RgbImage(64, 64);
        for (int i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)(i * 7);
        byte[] png = ImageCodec.EncodePng(image);

        Assert.Throws<InvalidDataException>(() => ImageCodec.DecodeRgb(png[..(png.Length / 2)]));
    }

    [Test]
    public void Identify_Should_ReadTheHeaderOnly()
    {
        byte[] png = ImageCodec.EncodePng(new RgbImage(10, 7));

        Assert.That(ImageCodec.Identify(png), Is.EqualTo(new ImageInfo(10, 7, "png")));
        Assert.Throws<InvalidDataException>(() => ImageCodec.Identify([1, 2, 3, 4]));
    }
}
