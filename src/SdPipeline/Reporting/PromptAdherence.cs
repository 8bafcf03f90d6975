using SdPipeline.Data;
using SdPipeline.Images;

namespace SdPipeline.Reporting;

/// <summary>
/// Measures whether samples of the synthetic <c>shapes</c> dataset show what their caption asked for, from
/// pixel statistics alone: every pixel is assigned to the nearest palette colour (or to none when it is
/// far from all of them); the most common colour is the background and the most common other colour,
/// if it covers at least <see cref="MinimumShapeShare"/> of the image, is the shape's. The shapes
/// generator never paints a shape in its background's colour and a shape never covers half the image,
/// so on its own images this reads every caption back exactly.
/// </summary>
public static class PromptAdherence
{
    /// <summary>Share of the image the shape colour must cover (the smallest generated triangle covers about 6%).</summary>
    public const double MinimumShapeShare = 0.02;

    /// <summary>
    /// RGB distance beyond which a pixel belongs to no palette colour. Half the closest pair's distance
    /// (yellow–orange, 81) would split every pixel; this wider margin keeps a model's off-shade colours
    /// while leaving out greys and blends that resemble nothing.
    /// </summary>
    public const double MaximumColorDistance = 72;

    /// <summary>Reads the background and shape colour of an image.</summary>
    public static ColorReading Read(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var palette = ShapesGenerator.Colors;
        var counts = new int[palette.Count];
        var pixels = image.Pixels;
        double limit = MaximumColorDistance * MaximumColorDistance;
        for (int i = 0; i < pixels.Length; i += 3)
        {
            int nearest = -1;
            double best = double.MaxValue;
            for (int k = 0; k < palette.Count; k++)
            {
                var (r, g, b) = palette[k].Color;
                double dr = pixels[i] - r, dg = pixels[i + 1] - g, db = pixels[i + 2] - b;
                double d = dr * dr + dg * dg + db * db;
                if (d < best)
                {
                    best = d;
                    nearest = k;
                }
            }
            if (best <= limit) counts[nearest]++;
        }

        double total = Math.Max(1, image.Width * image.Height);
        int background = ArgMax(counts, exclude: -1);
        if (background < 0) return new ColorReading(null, 0, null, 0);
        int shape = ArgMax(counts, exclude: background);
        bool hasShape = shape >= 0 && counts[shape] >= MinimumShapeShare * total;
        return new ColorReading(
            palette[background].Name, counts[background] / total,
            hasShape ? palette[shape].Name : null, hasShape ? counts[shape] / total : 0);
    }

    /// <summary>Judges one sample against its prompt; null when the prompt is not a shapes caption.</summary>
    public static AdherenceVerdict? Judge(ModelVariant model, string prompt, SampleImage sample)
    {
        if (ShapesCaption.TryParse(prompt) is not { } expected) return null;
        ColorReading reading;
        try
        {
            reading = Read(ImageCodec.DecodeRgb(sample.Png));
        }
        catch (InvalidDataException)
        {
            reading = new ColorReading(null, 0, null, 0); // an undecodable sample shows nothing, so it adheres to nothing
        }
        return new AdherenceVerdict(model, prompt, sample.Seed, expected, reading);
    }

    /// <summary>
    /// Judges every sample whose prompt is a shapes caption and counts the rates per model; null when no
    /// prompt is one (another dataset: adherence is not measured).
    /// </summary>
    public static AdherenceResult? Evaluate(IEnumerable<SampleSet> samples)
    {
        var verdicts = new List<AdherenceVerdict>();
        foreach (var set in samples)
        {
            if (ShapesCaption.TryParse(set.Prompt) is null) continue;
            verdicts.AddRange(set.Base.Select(s => Judge(ModelVariant.Base, set.Prompt, s)!));
            verdicts.AddRange(set.FineTuned.Select(s => Judge(ModelVariant.FineTuned, set.Prompt, s)!));
        }
        if (verdicts.Count == 0) return null;
        return new AdherenceResult(
            AdherenceRates.Of(verdicts.Where(v => v.Model == ModelVariant.Base)),
            AdherenceRates.Of(verdicts.Where(v => v.Model == ModelVariant.FineTuned)),
            verdicts);
    }

    private static int ArgMax(int[] counts, int exclude)
    {
        int best = -1;
        for (int k = 0; k < counts.Length; k++)
            if (k != exclude && counts[k] > 0 && (best < 0 || counts[k] > counts[best]))
                best = k;
        return best;
    }
}
