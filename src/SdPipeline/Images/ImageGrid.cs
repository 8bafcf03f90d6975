namespace SdPipeline.Images;

/// <summary>
/// Lays images out in a grid of equal cells, row by row, without labels (the report writes labels as
/// text beside the grid, where they stay readable and searchable).
/// </summary>
public static class ImageGrid
{
    /// <summary>
    /// Composes <paramref name="images"/> into <paramref name="columns"/> columns. Every cell is as large as
    /// the largest image; a smaller image sits centred in its cell. <paramref name="padding"/> pixels of
    /// <paramref name="fill"/> (default white) separate the cells and frame the grid, so the result is
    /// <c>columns·cellWidth + (columns+1)·padding</c> wide and <c>rows·cellHeight + (rows+1)·padding</c> high.
    /// </summary>
    public static RgbImage Compose(IReadOnlyList<RgbImage> images, int columns, int padding = 0, (byte R, byte G, byte B)? fill = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("a grid needs at least one image", nameof(images));
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);

        int rows = (images.Count + columns - 1) / columns;
        int cellWidth = images.Max(i => i.Width);
        int cellHeight = images.Max(i => i.Height);
        int width = columns * cellWidth + (columns + 1) * padding;
        int height = rows * cellHeight + (rows + 1) * padding;
        var grid = new RgbImage(width, height);

        var (r, g, b) = fill ?? ((byte)255, (byte)255, (byte)255);
        var pixels = grid.Pixels;
        for (int i = 0; i < pixels.Length; i += 3)
        {
            pixels[i] = r;
            pixels[i + 1] = g;
            pixels[i + 2] = b;
        }

        for (int n = 0; n < images.Count; n++)
        {
            var image = images[n];
            int left = padding + (n % columns) * (cellWidth + padding) + (cellWidth - image.Width) / 2;
            int top = padding + (n / columns) * (cellHeight + padding) + (cellHeight - image.Height) / 2;
            int rowBytes = image.Width * 3;
            for (int y = 0; y < image.Height; y++)
                Buffer.BlockCopy(image.Pixels, y * rowBytes, pixels, ((top + y) * width + left) * 3, rowBytes);
        }
        return grid;
    }

    /// <summary>Decodes encoded images, composes them (see <see cref="Compose"/>) and encodes the grid as PNG.</summary>
    public static byte[] ComposePng(IReadOnlyList<byte[]> encoded, int columns, int padding = 0, (byte R, byte G, byte B)? fill = null) =>
        ImageCodec.EncodePng(Compose(encoded.Select(ImageCodec.DecodeRgb).ToList(), columns, padding, fill));
}
