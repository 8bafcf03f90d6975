using SdPipeline.Images;
using SdPipeline.Reporting;

namespace SdPipeline.Tests.Reporting;

public sealed class ImageFlagsTests
{
    [Test]
    public void Check_Should_FlagAnAllBlackImage_When_ItHasFaintNoise()
    {
        // Given the fp16 VAE failure: black with a little noise (as a lossy re-encode leaves it)
        var image = new RgbImage(32, 32);
        var random = new Random(1);
        for (int i = 0; i < image.Pixels.Length; i++) image.Pixels[i] = (byte)random.Next(0, 6);

        // When
        string? flag = ImageFlags.Check(image);

        // Then
        Assert.That(flag, Does.StartWith("all black"));
    }

    [Test]
    public void Check_Should_FlagAConstantImage_When_ItIsOneColour()
    {
        string? flag = ImageFlags.Check(ReportTestData.Constant(16, 128, 128, 128));

        Assert.That(flag, Does.StartWith("constant colour rgb(128, 128, 128)"));
    }

    [Test]
    public void Check_Should_FlagANearlyConstantImage_When_OnlyAFewPixelsDiffer()
    {
        // Given a flat grey with 3 bright pixels: the range is large but the image shows nothing
        var image = new RgbImage(64, 64);
        Array.Fill(image.Pixels, (byte)90);
        image.Set(1, 1, 255, 255, 255);
        image.Set(10, 20, 0, 0, 0);
        image.Set(30, 40, 255, 0, 0);

        Assert.That(ImageFlags.Check(image), Does.StartWith("constant colour"));
    }

    [Test]
    public void Check_Should_PassAPicture_When_ItHasContent()
    {
        var shapes = ReportTestData.Shapes(8);

        Assert.That(shapes.Select(s => ImageFlags.Check(s.Png)), Is.All.Null);
        Assert.That(ImageFlags.Check(ReportTestData.Noise(32, 3)), Is.Null);
    }

    [Test]
    public void Check_Should_FlagBytes_When_TheyAreNotAnImage()
    {
        Assert.That(ImageFlags.Check(new byte[] { 1, 2, 3 }), Does.StartWith("not decodable"));
    }
}
