namespace SdPipeline.Images;

/// <summary>
/// PIL's resampling (Pillow's <c>Resample.c</c>), reproduced because diffusers' training data goes through
/// it: separable convolution, the kernel widened by the scale factor when downsampling (antialiasing),
/// weights normalised per output pixel and converted to 22-bit fixed point, the horizontal pass first,
/// and — the part no stock resampler shares — the intermediate image rounded and clipped to 8 bits
/// between the passes. ImageSharp's resamplers keep floats between passes and measured up to 3 grey
/// levels (bicubic) and 13 (Lanczos, upscaling) away from PIL on the fixtures; this reproduces PIL exactly.
/// </summary>
public static class PilResampler
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>A resampling filter: its support (half-width at scale 1) and its kernel.</summary>
    /// <param name="Support">Half-width of the kernel in input pixels at scale 1.</param>
    /// <param name="Kernel">The kernel function.</param>
    public sealed record Filter(double Support, Func<double, double> Kernel);

    /// <summary>PIL's BILINEAR (triangle).</summary>
    public static Filter Bilinear { get; } = new(1.0, x => Math.Abs(x) < 1.0 ? 1.0 - Math.Abs(x) : 0.0);

    /// <summary>PIL's BICUBIC (Keys cubic, a = -0.5).</summary>
    public static Filter Bicubic { get; } = new(2.0, BicubicKernel);

    /// <summary>PIL's LANCZOS (a = 3).</summary>
    public static Filter Lanczos { get; } = new(3.0, x => x > -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3.0) : 0.0);

    /// <summary>Resizes <paramref name="image"/> to <paramref name="width"/>×<paramref name="height"/> as PIL's <c>Image.resize</c>.</summary>
    public static RgbImage Resize(RgbImage image, int width, int height, Filter filter)
    {
        var result = image;
        if (width != image.Width)
            result = Horizontal(result, width, filter);
        if (height != image.Height)
            result = Vertical(result, height, filter);
        return ReferenceEquals(result, image) ? new RgbImage(image.Width, image.Height, (byte[])image.Pixels.Clone()) : result;
    }

    private static RgbImage Horizontal(RgbImage input, int width, Filter filter)
    {
        var (bounds, weights, size) = Coefficients(input.Width, width, filter);
        var output = new RgbImage(width, input.Height);
        byte[] src = input.Pixels, dst = output.Pixels;
        for (int y = 0; y < input.Height; y++)
        {
            int row = y * input.Width * 3;
            for (int x = 0; x < width; x++)
            {
                int min = bounds[2 * x], count = bounds[2 * x + 1], k = x * size;
                int r = 1 << (PrecisionBits - 1), g = r, b = r;
                for (int i = 0; i < count; i++)
                {
                    int p = row + (min + i) * 3, w = weights[k + i];
                    r += src[p] * w;
                    g += src[p + 1] * w;
                    b += src[p + 2] * w;
                }
                int o = (y * width + x) * 3;
                dst[o] = Clip8(r);
                dst[o + 1] = Clip8(g);
                dst[o + 2] = Clip8(b);
            }
        }
        return output;
    }

    private static RgbImage Vertical(RgbImage input, int height, Filter filter)
    {
        var (bounds, weights, size) = Coefficients(input.Height, height, filter);
        var output = new RgbImage(input.Width, height);
        byte[] src = input.Pixels, dst = output.Pixels;
        int stride = input.Width * 3;
        for (int y = 0; y < height; y++)
        {
            int min = bounds[2 * y], count = bounds[2 * y + 1], k = y * size;
            for (int x = 0; x < input.Width; x++)
            {
                int r = 1 << (PrecisionBits - 1), g = r, b = r;
                for (int i = 0; i < count; i++)
                {
                    int p = (min + i) * stride + x * 3, w = weights[k + i];
                    r += src[p] * w;
                    g += src[p + 1] * w;
                    b += src[p + 2] * w;
                }
                int o = (y * input.Width + x) * 3;
                dst[o] = Clip8(r);
                dst[o + 1] = Clip8(g);
                dst[o + 2] = Clip8(b);
            }
        }
        return output;
    }

    /// <summary>Per output pixel: first input index, tap count, and fixed-point weights (Pillow's precompute_coeffs + normalize_coeffs_8bpc).</summary>
    private static (int[] Bounds, int[] Weights, int Size) Coefficients(int inSize, int outSize, Filter filter)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = filter.Support * filterScale;
        int size = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * size];
        var taps = new double[size];
        for (int xx = 0; xx < outSize; xx++)
        {
            double center = (xx + 0.5) * scale;
            double inverse = 1.0 / filterScale;
            int min = Math.Max((int)(center - support + 0.5), 0);
            int max = Math.Min((int)(center + support + 0.5), inSize) - min;
            double total = 0.0;
            for (int x = 0; x < max; x++)
            {
                double w = filter.Kernel((x + min - center + 0.5) * inverse);
                taps[x] = w;
                total += w;
            }
            for (int x = 0; x < max; x++)
            {
                double w = total != 0.0 ? taps[x] / total : taps[x];
                weights[xx * size + x] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            bounds[2 * xx] = min;
            bounds[2 * xx + 1] = max;
        }
        return (bounds, weights, size);
    }

    private static byte Clip8(int value)
    {
        int shifted = value >> PrecisionBits;
        return shifted < 0 ? (byte)0 : shifted > 255 ? (byte)255 : (byte)shifted;
    }

    private static double BicubicKernel(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }
}
