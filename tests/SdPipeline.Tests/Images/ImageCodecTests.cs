using SdPipeline.Images;
using SkiaSharp;

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

    [TestCase(new byte[] { 0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0 })]
    [TestCase(new byte[] { 0x4D, 0x4D, 0x00, 0x2A, 0, 0, 0, 8 })]
    public void Identify_Should_SayATiffCannotBeDecoded_AndHowToConvertIt(byte[] header)
    {
        var error = Assert.Throws<InvalidDataException>(() => ImageCodec.Identify([.. header, .. new byte[64]]))!;

        Assert.That(error.Message, Does.Contain("a TIFF image").And.Contain("convert it to PNG"));
        Assert.That(Assert.Throws<InvalidDataException>(() => ImageCodec.DecodeRgb([.. header, .. new byte[64]]))!.Message, Does.Contain("a TIFF image"));
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

    // A 64x32 photo in four 32x16 blocks, stored as a camera stores it, shown as its EXIF orientation says; the colour
    // at the centre of each displayed quadrant (top-left, top-right, bottom-left, bottom-right) after PIL's exif_transpose.
    private static readonly byte[][] Quadrants = [[250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 250]]; // stored TL, TR, BL, BR

    [TestCase(1, 64, 32, new[] { 0, 1, 2, 3 })]
    [TestCase(2, 64, 32, new[] { 1, 0, 3, 2 })]
    [TestCase(3, 64, 32, new[] { 3, 2, 1, 0 })]
    [TestCase(4, 64, 32, new[] { 2, 3, 0, 1 })]
    [TestCase(5, 32, 64, new[] { 0, 2, 1, 3 })]
    [TestCase(6, 32, 64, new[] { 2, 0, 3, 1 })]
    [TestCase(7, 32, 64, new[] { 3, 1, 2, 0 })]
    [TestCase(8, 32, 64, new[] { 1, 3, 0, 2 })]
    public void DecodeRgb_Should_TurnTheImageUpright_ByItsExifOrientation_AsHuggingFaceDatasets(int orientation, int width, int height, int[] shown)
    {
        // Given a JPEG whose EXIF says how to display it (a phone's portrait photo is stored landscape with orientation 6)
        byte[] jpeg = JpegWithOrientation(orientation);

        // When it is identified and decoded
        var info = ImageCodec.Identify(jpeg);
        var image = ImageCodec.DecodeRgb(jpeg);

        // Then both see it as displayed, as datasets' Image feature hands it to diffusers' training scripts
        Assert.That((info.Width, info.Height), Is.EqualTo((width, height)));
        Assert.That((image.Width, image.Height), Is.EqualTo((width, height)));
        var centres = new[] { (width / 4, height / 4), (3 * width / 4, height / 4), (width / 4, 3 * height / 4), (3 * width / 4, 3 * height / 4) };
        for (int q = 0; q < 4; q++)
        {
            var (x, y) = centres[q];
            int p = (y * width + x) * 3;
            var expected = Quadrants[shown[q]];
            for (int c = 0; c < 3; c++)
                Assert.That((int)image.Pixels[p + c], Is.EqualTo(expected[c]).Within(8), $"orientation {orientation}, quadrant {q}, channel {c}");
        }
    }

    private static byte[] JpegWithOrientation(int orientation)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(64, 32, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 64; x++)
            {
                var c = Quadrants[(y < 16 ? 0 : 2) + (x < 32 ? 0 : 1)];
                bitmap.SetPixel(x, y, new SKColor(c[0], c[1], c[2]));
            }
        using var encoded = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        byte[] jpeg = encoded.ToArray();
        // APP1 "Exif": a big-endian TIFF header and one IFD entry, Orientation (0x0112) SHORT = orientation.
        byte[] exif =
        [
            (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0,
            (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8,
            0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (byte)orientation, 0, 0,
            0, 0, 0, 0,
        ];
        int length = exif.Length + 2;
        return [.. jpeg[..2], 0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. exif, .. jpeg[2..]];
    }
}
