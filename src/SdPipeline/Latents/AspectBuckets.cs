namespace SdPipeline.Latents;

/// <summary>One training resolution of aspect-ratio bucketing.</summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
public sealed record Bucket(int Width, int Height)
{
    /// <summary>Width ÷ height.</summary>
    public double AspectRatio => (double)Width / Height;

    /// <summary>"WxH", as the index and logs write it.</summary>
    public override string ToString() => $"{Width}x{Height}";
}

/// <summary>
/// Aspect-ratio bucketing as NovelAI described it and kohya's sd-scripts do it: resolutions of about
/// <c>resolution²</c> pixels with sides in steps of 64 between a minimum and a maximum, so a tall or wide
/// image is trained whole instead of centre-cropped to a square. Each image goes to the bucket nearest its
/// aspect ratio (compared on a log scale, so 2:1 and 1:2 are equally far from 1:1).
/// </summary>
public static class AspectBuckets
{
    /// <summary>The buckets for a target <paramref name="resolution"/>, square first.</summary>
    public static IReadOnlyList<Bucket> Make(int resolution, int minSide, int maxSide, int step = 64)
    {
        if (step <= 0 || minSide <= 0 || maxSide < minSide)
            throw new ArgumentException($"bucket sides must satisfy 0 < min ({minSide}) ≤ max ({maxSide}) and step {step} > 0");
        long area = (long)resolution * resolution;
        var buckets = new List<Bucket> { new(resolution, resolution) };
        for (int width = RoundUp(minSide, step); width <= maxSide; width += step)
        {
            int height = (int)Math.Min(maxSide, area / width / step * step);
            if (height < minSide || height == width) continue;
            // Both orientations: the largest height for a width is not always the largest width for that height.
            buckets.Add(new Bucket(width, height));
            buckets.Add(new Bucket(height, width));
        }
        return buckets.Distinct().ToList();
    }

    /// <summary>The bucket nearest the image's aspect ratio; ties go to the earlier (squarer) bucket.</summary>
    public static Bucket Nearest(IReadOnlyList<Bucket> buckets, int width, int height)
    {
        double target = Math.Log((double)width / height);
        Bucket best = buckets[0];
        double bestDistance = double.MaxValue;
        foreach (var bucket in buckets)
        {
            double distance = Math.Abs(Math.Log(bucket.AspectRatio) - target);
            if (distance < bestDistance - 1e-12)
            {
                best = bucket;
                bestDistance = distance;
            }
        }
        return best;
    }

    private static int RoundUp(int value, int step) => (value + step - 1) / step * step;
}
