namespace SdPipeline.Images;

/// <summary>An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC), as PIL's "RGB" mode holds it.</summary>
public sealed class RgbImage
{
    /// <summary>Creates an image over <paramref name="pixels"/> (length width·height·3).</summary>
    public RgbImage(int width, int height, byte[] pixels)
    {
        if (pixels.Length != width * height * 3)
            throw new ArgumentException($"{pixels.Length} bytes do not hold a {width}x{height} RGB image", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    /// <summary>Creates a black image.</summary>
    public RgbImage(int width, int height) : this(width, height, new byte[width * height * 3]) { }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixel bytes, R G B per pixel.</summary>
    public byte[] Pixels { get; }

    /// <summary>Sets one pixel.</summary>
    public void Set(int x, int y, byte r, byte g, byte b)
    {
        int i = (y * Width + x) * 3;
        Pixels[i] = r;
        Pixels[i + 1] = g;
        Pixels[i + 2] = b;
    }
}
