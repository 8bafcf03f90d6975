using SdPipeline.Images;
using SdPipeline.Tests.Reporting;

namespace SdPipeline.Tests.Images;

public sealed class ImageGridTests
{
    private static RgbImage Filled(int width, int height, byte value)
    {
        var image = new RgbImage(width, height);
        Array.Fill(image.Pixels, value);
        return image;
    }

    private static (byte, byte, byte) At(RgbImage image, int x, int y)
    {
        int i = (y * image.Width + x) * 3;
        return (image.Pixels[i], image.Pixels[i + 1], image.Pixels[i + 2]);
    }

    [Test]
    public void Compose_Should_LayOutRowsAndColumns_When_Padded()
    {
        // Given three 64x48 images in two columns with 4 px padding
        var images = new[] { Filled(64, 48, 10), Filled(64, 48, 20), Filled(64, 48, 30) };

        // When
        var grid = ImageGrid.Compose(images, columns: 2, padding: 4);

        // Then: 2·64 + 3·4 wide, 2·48 + 3·4 high; image 3 starts the second row; the empty cell is fill
        Assert.That((grid.Width, grid.Height), Is.EqualTo((140, 108)));
        Assert.That(At(grid, 4, 4), Is.EqualTo(((byte)10, (byte)10, (byte)10)));
        Assert.That(At(grid, 4 + 64 + 4, 4), Is.EqualTo(((byte)20, (byte)20, (byte)20)));
        Assert.That(At(grid, 4, 4 + 48 + 4), Is.EqualTo(((byte)30, (byte)30, (byte)30)));
        Assert.That(At(grid, 4 + 64 + 4, 4 + 48 + 4), Is.EqualTo(((byte)255, (byte)255, (byte)255)));
        Assert.That(At(grid, 0, 0), Is.EqualTo(((byte)255, (byte)255, (byte)255)));
        Assert.That(At(grid, 139, 107), Is.EqualTo(((byte)255, (byte)255, (byte)255)));
    }

    [Test]
    public void Compose_Should_CentreASmallerImage_In_ItsCell()
    {
        var grid = ImageGrid.Compose([Filled(8, 8, 50), Filled(4, 4, 99)], columns: 2, fill: (0, 0, 0));

        Assert.That((grid.Width, grid.Height), Is.EqualTo((16, 8)));
        Assert.That(At(grid, 8 + 1, 1), Is.EqualTo(((byte)0, (byte)0, (byte)0)));
        Assert.That(At(grid, 8 + 2, 2), Is.EqualTo(((byte)99, (byte)99, (byte)99)));
        Assert.That(At(grid, 8 + 5, 5), Is.EqualTo(((byte)99, (byte)99, (byte)99)));
        Assert.That(At(grid, 8 + 6, 6), Is.EqualTo(((byte)0, (byte)0, (byte)0)));
    }

    [Test]
    public void ComposePng_Should_EncodeAGridOfTheExpectedSize()
    {
        var pngs = ReportTestData.Shapes(4).Select(s => s.Png).ToList();

        var grid = ImageCodec.DecodeRgb(ImageGrid.ComposePng(pngs, columns: 4, padding: 2));

        Assert.That((grid.Width, grid.Height), Is.EqualTo((4 * 64 + 5 * 2, 64 + 2 * 2)));
    }

    [Test]
    public void Compose_Should_Refuse_When_ThereIsNoImage()
    {
        Assert.Throws<ArgumentException>(() => ImageGrid.Compose([], columns: 2));
    }
}
