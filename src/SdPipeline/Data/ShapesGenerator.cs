using SdPipeline.Images;

namespace SdPipeline.Data;

/// <summary>Options of the <c>synthetic:shapes</c> source (the <c>options</c> object of its registry entry).</summary>
/// <param name="Seed">Seed of the generator.</param>
/// <param name="Count">Training images.</param>
/// <param name="HeldoutCount">Held-out images (drawn from a separate stream).</param>
/// <param name="ImageSize">Side of the square images in pixels.</param>
public sealed record ShapesOptions(int Seed = 1234, int Count = 512, int HeldoutCount = 64, int ImageSize = 64);

/// <summary>
/// A deterministic dataset of one coloured shape on a coloured background, captioned with what it shows:
/// "a red circle on a blue background". Item i of a split depends only on (seed, split, i), so asking for
/// more items extends the set without changing the first ones. Its captions name the colour a sample must
/// show, which lets the report measure prompt adherence from pixels.
/// </summary>
public static class ShapesGenerator
{
    /// <summary>The palette: names used in captions, and their RGB values (far apart, so pixels classify cleanly).</summary>
    public static IReadOnlyList<(string Name, (byte R, byte G, byte B) Color)> Colors { get; } =
    [
        ("red", ((byte)220, (byte)30, (byte)30)),
        ("green", ((byte)30, (byte)170, (byte)50)),
        ("blue", ((byte)30, (byte)70, (byte)220)),
        ("yellow", ((byte)240, (byte)220, (byte)30)),
        ("purple", ((byte)140, (byte)40, (byte)180)),
        ("orange", ((byte)250, (byte)140, (byte)20)),
        ("white", ((byte)245, (byte)245, (byte)245)),
        ("black", ((byte)20, (byte)20, (byte)20)),
    ];

    /// <summary>The shapes used in captions.</summary>
    public static IReadOnlyList<string> Shapes { get; } = ["circle", "square", "triangle"];

    /// <summary>The candidates of both splits, training first.</summary>
    public static IEnumerable<CandidateItem> Generate(ShapesOptions options, int count)
    {
        int trainCount = count > 0 ? count : options.Count;
        for (int i = 0; i < trainCount; i++)
            yield return Item(options, DatasetItem.TrainSplit, i);
        for (int i = 0; i < options.HeldoutCount; i++)
            yield return Item(options, DatasetItem.HeldoutSplit, i);
    }

    private static CandidateItem Item(ShapesOptions options, string split, int index)
    {
        var random = new SplitMix64(Mix((ulong)options.Seed, split == DatasetItem.TrainSplit ? 1UL : 2UL, (ulong)index));
        int color = random.NextInt(Colors.Count);
        int background = (color + 1 + random.NextInt(Colors.Count - 1)) % Colors.Count; // never the shape's colour
        string shape = Shapes[random.NextInt(Shapes.Count)];
        int size = options.ImageSize;
        double radius = size * (0.22 + 0.12 * random.NextDouble());
        double cx = radius + (size - 2 * radius) * random.NextDouble();
        double cy = radius + (size - 2 * radius) * random.NextDouble();
        double angle = random.NextDouble() * Math.PI * 2;
        string caption = new ShapesCaption(Colors[color].Name, shape, Colors[background].Name).Text;
        return new CandidateItem($"shapes/{split}/{index:D5}", caption,
            () => Render(size, shape, cx, cy, radius, angle, Colors[color].Color, Colors[background].Color), split);
    }

    private static byte[] Render(int size, string shape, double cx, double cy, double radius, double angle, (byte R, byte G, byte B) fill, (byte R, byte G, byte B) background)
    {
        var image = new RgbImage(size, size);
        const int sub = 4; // 4x4 supersampling for anti-aliased edges
        for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
        {
            int inside = 0;
            for (int sy = 0; sy < sub; sy++)
            for (int sx = 0; sx < sub; sx++)
                if (Contains(shape, x + (sx + 0.5) / sub - cx, y + (sy + 0.5) / sub - cy, radius, angle)) inside++;
            double a = inside / (double)(sub * sub);
            image.Set(x, y, Blend(fill.R, background.R, a), Blend(fill.G, background.G, a), Blend(fill.B, background.B, a));
        }
        return ImageCodec.EncodePng(image);
    }

    private static byte Blend(byte fill, byte background, double a) => (byte)Math.Round(fill * a + background * (1 - a));

    private static bool Contains(string shape, double dx, double dy, double radius, double angle)
    {
        // Rotate the point into the shape's frame.
        double x = dx * Math.Cos(angle) + dy * Math.Sin(angle);
        double y = -dx * Math.Sin(angle) + dy * Math.Cos(angle);
        switch (shape)
        {
            case "circle":
                return x * x + y * y <= radius * radius;
            case "square":
                double half = radius * 0.85;
                return Math.Abs(x) <= half && Math.Abs(y) <= half;
            case "triangle":
                // Equilateral triangle inscribed in the circle of the given radius.
                for (int k = 0; k < 3; k++)
                {
                    double theta = k * 2 * Math.PI / 3;
                    double nx = Math.Cos(theta), ny = Math.Sin(theta);
                    if (x * nx + y * ny > radius / 2) return false;
                }
                return true;
            default:
                throw new NotSupportedException($"shape '{shape}'");
        }
    }

    private static ulong Mix(ulong a, ulong b, ulong c) => new SplitMix64(a ^ (b * 0x9E3779B97F4A7C15UL) ^ (c * 0xC2B2AE3D27D4EB4FUL)).NextUInt64();

    /// <summary>SplitMix64: a tiny generator whose stream is fixed by its definition, unlike System.Random's.</summary>
    private sealed class SplitMix64(ulong state)
    {
        public ulong NextUInt64()
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

        public int NextInt(int bound) => (int)(NextUInt64() % (ulong)bound);
    }
}
