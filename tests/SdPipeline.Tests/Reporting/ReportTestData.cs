using System.Globalization;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Data;
using SdPipeline.Images;
using SdPipeline.Reporting;

namespace SdPipeline.Tests.Reporting;

/// <summary>Synthetic report inputs: real shapes images as samples, a made-up metrics log.</summary>
internal static class ReportTestData
{
    public static readonly RunOverview Overview = new(
        "builtin:tiny", "shapes", "cpu", "0.1.0-test", "0.107.0", "2.10.0", "0123456789abcdef0123456789abcdef01234567",
        new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));

    /// <summary>The first <paramref name="count"/> training items of the shapes dataset: (caption, PNG).</summary>
    public static IReadOnlyList<(string Caption, byte[] Png)> Shapes(int count, int imageSize = 64) =>
        ShapesGenerator.Generate(new ShapesOptions(ImageSize: imageSize, HeldoutCount: 0), count)
            .Select(c => (c.Caption!, c.ReadImage!()))
            .ToList();

    public static byte[] Constant(int size, byte r, byte g, byte b)
    {
        var image = new RgbImage(size, size);
        for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            image.Set(x, y, r, g, b);
        return ImageCodec.EncodePng(image);
    }

    /// <summary>Uniform noise: a picture of nothing, which no flag should catch and no caption matches.</summary>
    public static byte[] Noise(int size, int seed)
    {
        var random = new Random(seed);
        var image = new RgbImage(size, size);
        random.NextBytes(image.Pixels);
        return ImageCodec.EncodePng(image);
    }

    /// <summary>
    /// 40 train steps and 4 evals. The loss falls from 1.0 towards 0.2; step 7 was skipped by the fp16
    /// scaler (null loss); the caption-shuffle gap grows from 0 at step 10 to 0.05 at step 40 (held-out 0.25, shuffled 0.3).
    /// </summary>
    public static IReadOnlyList<string> MetricsLines()
    {
        var lines = new List<string>();
        for (int step = 1; step <= 40; step++)
        {
            bool skipped = step == 7;
            double loss = 0.2 + 0.8 * Math.Exp(-step / 10.0) + 0.02 * Math.Sin(step);
            string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
            lines.Add($"{{\"kind\":\"train\",\"step\":{step},\"epoch\":{(step - 1) / 20},\"loss\":{(skipped ? "null" : F(loss))}," +
                      $"\"lr\":{F(1e-4 * Math.Min(1, step / 10.0))},\"grad_norm\":0.8,\"loss_scale\":{(skipped ? "32768.0" : "65536.0")},\"skipped\":{(skipped ? "true" : "false")}," +
                      $"\"step_time_s\":{F(step == 1 ? 3.0 : 0.5 + 0.01 * (step % 3))},\"images_per_s\":{F(step == 1 ? 2.7 : 8 / (0.5 + 0.01 * (step % 3)))}," +
                      $"\"peak_memory_bytes\":{(long)(600 + step) * 1024 * 1024},\"future_field\":[1,2]}}");
            if (step % 10 == 0)
                lines.Add($"{{\"kind\":\"eval\",\"step\":{step},\"heldout_loss\":{F(0.25 + 0.1 * (40 - step) / 30.0)},\"heldout_loss_shuffled\":{F(0.3 + 0.05 * (40 - step) / 30.0)}}}");
        }
        lines.Add("{\"kind\":\"checkpoint\",\"step\":40,\"path\":\"unet.safetensors\"}");
        return lines;
    }

    /// <summary>
    /// A full input: 3 shapes prompts with 2 seeds each. Fine-tuned samples are the dataset's own images
    /// (they adhere), base samples are noise (they do not); the fine-tuned sample of the second prompt's
    /// second seed is all black.
    /// </summary>
    public static ReportInput Full()
    {
        var shapes = Shapes(6);
        var samples = new List<SampleSet>();
        for (int p = 0; p < 3; p++)
        {
            string prompt = shapes[2 * p].Caption;
            // The dataset's image stands in for a perfectly fine-tuned sample of either seed.
            var tuned = new List<SampleImage> { SampleImage.FromPng(1, shapes[2 * p].Png) };
            tuned.Add(p == 1 ? SampleImage.FromPng(2, Constant(64, 0, 0, 0)) : SampleImage.FromPng(2, shapes[2 * p].Png));
            var based = new List<SampleImage> { SampleImage.FromPng(1, Noise(64, 10 * p + 1)), SampleImage.FromPng(2, Noise(64, 10 * p + 2)) };
            samples.Add(new SampleSet(prompt, based, tuned));
        }
        return new ReportInput(Overview)
        {
            Stages =
            [
                new StageRun("model", new string('a', 64), true, 1.5),
                new StageRun("download", new string('b', 64), true, 2.25),
                new StageRun("latents", new string('c', 64), false, 30.0),
                new StageRun("train", new string('d', 64), false, 412.5),
                new StageRun("sample", new string('e', 64), false, 95.0),
            ],
            ConfigDifferences = [new ConfigDifference("download.count", "0", "128"), new ConfigDifference("train.learning_rate", "0.0001", "5e-05")],
            Metrics = MetricsLog.Parse(MetricsLines(), "metrics.jsonl"),
            Samples = samples,
            Benchmark = new SweepTable(["precision", "checkpointing", "step time (s)", "peak memory (GiB)"],
                [["fp32", "off", "13.5", "14.0"], ["fp32", "on", "14.2", "13.8"]], ["2 threads, batch 1, 256 px"]),
            Warnings = ["download: 3 items skipped (2 below download.min_side, 1 undecodable)"],
            Adherence = PromptAdherence.Evaluate(samples),
        };
    }
}
