using Newtonsoft.Json.Linq;
using SdPipeline.Config;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// One cell of the benchmark sweep: a compute precision, gradient checkpointing on or off, the full or half
/// training resolution, and the training method. Its id, <c>PRECISION-off|on-full|half</c> with <c>-lora</c> appended for a
/// LoRA run (<c>no-off-full</c>, <c>bf16-on-half</c>, <c>no-off-full-lora</c>), names it on the command line
/// (<c>sdpipe benchmark --cell ID</c>) and in CI matrices.
/// </summary>
/// <param name="MixedPrecision"><c>no</c>, <c>bf16</c> or <c>fp16</c>.</param>
/// <param name="GradientCheckpointing">Whether the UNet's blocks are recomputed in backward.</param>
/// <param name="Resolution"><c>full</c> (latents.resolution) or <c>half</c>.</param>
/// <param name="Method"><c>full</c> (fine-tune every weight) or <c>lora</c> (train.method).</param>
public sealed record BenchmarkCell(string MixedPrecision, bool GradientCheckpointing, string Resolution, string Method = TrainingMethods.Full)
{
    /// <summary>The precisions a cell may have.</summary>
    public static IReadOnlyList<string> Precisions { get; } = ["no", "bf16", "fp16"];

    /// <summary>The resolutions a cell may have.</summary>
    public static IReadOnlyList<string> Resolutions { get; } = ["full", "half"];

    /// <summary>The training methods a cell may have.</summary>
    public static IReadOnlyList<string> Methods { get; } = [TrainingMethods.Full, TrainingMethods.Lora];

    /// <summary>The cell every other is compared with: float32, no checkpointing, full resolution, full fine-tune.</summary>
    public static BenchmarkCell Baseline { get; } = new("no", false, "full");

    /// <summary>The id: <c>PRECISION-off|on-full|half</c>, and <c>-lora</c> for a LoRA cell.</summary>
    public string Id => $"{MixedPrecision}-{(GradientCheckpointing ? "on" : "off")}-{Resolution}" + (Method == TrainingMethods.Full ? "" : $"-{Method}");

    /// <summary>Whether this is <see cref="Baseline"/>.</summary>
    public bool IsBaseline => this == Baseline;

    /// <summary>The settings in which this cell differs from the baseline (<c>mixed_precision=bf16</c>, …); empty for the baseline.</summary>
    public IReadOnlyList<string> Differences
    {
        get
        {
            var differences = new List<string>();
            if (MixedPrecision != Baseline.MixedPrecision) differences.Add($"mixed_precision={MixedPrecision}");
            if (GradientCheckpointing != Baseline.GradientCheckpointing) differences.Add($"gradient_checkpointing={(GradientCheckpointing ? "on" : "off")}");
            if (Resolution != Baseline.Resolution) differences.Add($"resolution={Resolution}");
            if (Method != Baseline.Method) differences.Add($"method={Method}");
            return differences;
        }
    }

    /// <summary>The training resolution in pixels for a profile whose <c>latents.resolution</c> is <paramref name="full"/>.</summary>
    public int Pixels(int full) => Resolution == "full" ? full : Math.Max(8, full / 2 / 8 * 8);

    /// <summary>Parses an id made by <see cref="Id"/>.</summary>
    /// <exception cref="ConfigException">Not a cell id (the message shows the form and the valid parts).</exception>
    public static BenchmarkCell Parse(string id)
    {
        string[] parts = id.Split('-');
        if (parts.Length is not (3 or 4) || !Precisions.Contains(parts[0]) || parts[1] is not ("on" or "off") || !Resolutions.Contains(parts[2])
            || (parts.Length == 4 && parts[3] != TrainingMethods.Lora))
            throw new ConfigException($"'{id}' is not a benchmark cell id: expected PRECISION-CHECKPOINTING-RESOLUTION[-lora] with PRECISION one of " +
                $"{string.Join(", ", Precisions)}, CHECKPOINTING on or off, RESOLUTION full or half (for example no-off-full, no-off-full-lora); " +
                "`sdpipe benchmark --list-cells` lists the cells of the current config");
        return new BenchmarkCell(parts[0], parts[1] == "on", parts[2], parts.Length == 4 ? parts[3] : TrainingMethods.Full);
    }

    /// <summary>The cell as <c>{"id", "mixed_precision", "gradient_checkpointing", "resolution", "method"}</c>.</summary>
    public JObject ToJson() => new()
    {
        ["id"] = Id,
        ["mixed_precision"] = MixedPrecision,
        ["gradient_checkpointing"] = GradientCheckpointing,
        ["resolution"] = Resolution,
        ["method"] = Method,
    };
}
