using System.Globalization;
using System.Text;
using Newtonsoft.Json;
using SdPipeline.Models.Shared;

namespace SdPipeline.Benchmarks;

/// <summary>One path's timed runs on one kernel case.</summary>
/// <param name="Path">
/// <c>onednn</c> (the layer called with oneDNN on; libtorch may still take its own path for a small input), <c>libtorch</c>,
/// <c>winograd</c> or <c>plain_winograd</c> for a convolution; <c>libtorch</c> or <c>kernel</c> for a GroupNorm; <c>sdpa</c>
/// or <c>kernel</c> for attention.
/// </param>
/// <param name="Seconds">Each timed run.</param>
/// <param name="MedianSeconds">Their median.</param>
/// <param name="RelativeDifference">
/// Largest difference of its output from the layer's own path's, over the largest magnitude of that output (0 for the
/// layer's own path, NaN for it when its own output is not finite; NaN when the output holds NaN).
/// </param>
public sealed record PathTiming(string Path, IReadOnlyList<double> Seconds, double MedianSeconds, double RelativeDifference);

/// <summary>One distinct kernel choice of a model's inference and how each path that can make it fared.</summary>
public sealed record KernelCase
{
    /// <summary>The work watched, e.g. <c>unet forward 64x64 batch 2</c>.</summary>
    public required string Work { get; init; }

    /// <summary><c>convolution</c>, <c>group_norm</c> or <c>attention</c>.</summary>
    public required string Kind { get; init; }

    /// <summary>The first layer that made this call, by its weight-key name (<c>down_blocks.0.resnets.0.conv1</c>).</summary>
    public required string Layer { get; init; }

    /// <summary>How many calls of the work are alike (same sizes and input layout).</summary>
    public required int Count { get; init; }

    /// <summary>
    /// The sizes: a convolution's input and weight, a GroupNorm's input, groups and whether SiLU follows, an attention's
    /// query and key projections and heads.
    /// </summary>
    public required string Shape { get; init; }

    /// <summary>Whether the input was stored channels-last.</summary>
    public required bool ChannelsLast { get; init; }

    /// <summary>The path the model's rule took.</summary>
    public required string Chosen { get; init; }

    /// <summary>Every path that can compute the call here, the layer's own first.</summary>
    public required IReadOnlyList<PathTiming> Paths { get; init; }

    /// <summary>The path with the lowest median.</summary>
    public string Fastest => Paths.MinBy(p => p.MedianSeconds)!.Path;

    /// <summary>The chosen path's median over the fastest's (1 when the rule took the fastest).</summary>
    public double ChosenOverFastest => Median(Chosen) / Paths.Min(p => p.MedianSeconds);

    /// <summary>Whether the chosen path is the fastest, or within <see cref="KernelBenchmark.Margin"/> of it.</summary>
    public bool ChoiceHolds => ChosenOverFastest <= 1 + KernelBenchmark.Margin;

    /// <summary>Every path's output is libtorch's to float32 rounding (<see cref="KernelBenchmark.Tolerance"/>).</summary>
    public bool OutputsAgree => Paths.All(p => p.RelativeDifference <= KernelBenchmark.Tolerance);

    /// <summary>The seconds this case costs the work by the chosen path over the fastest, all its calls counted.</summary>
    public double SecondsLost => Count * (Median(Chosen) - Paths.Min(p => p.MedianSeconds));

    /// <summary>The median of the path named <paramref name="path"/>.</summary>
    public double Median(string path) => Paths.First(p => p.Path == path).MedianSeconds;

    internal static KernelCase Of(string work, KernelCall call, string layer, int count, IReadOnlyList<PathTiming> paths)
    {
        var (kind, shape, chosen) = call switch
        {
            ConvolutionCall c => ("convolution",
                $"{KernelBenchmark.Shape(c.InputShape)} * {KernelBenchmark.Shape(c.Convolution.weight!.shape)} stride {KernelBenchmark.Shape(c.Convolution.stride)}",
                KernelBenchmark.Name(c.Path)),
            GroupNormCall g => ("group_norm", $"{KernelBenchmark.Shape(g.InputShape)} groups {g.Norm.num_groups}{(g.Silu ? " + silu" : "")}", KernelBenchmark.Name(g.Path)),
            AttentionCall a => ("attention", $"q {KernelBenchmark.Shape(a.InputShape)} kv {KernelBenchmark.Shape(a.KeyShape)} heads {a.Attention.Heads}", KernelBenchmark.Name(a.Path)),
            LinearCall l => ("linear", $"{KernelBenchmark.Shape(l.InputShape)} * {KernelBenchmark.Shape(l.Linear.weight!.shape)}{(l.Linear.bias is null ? "" : " + bias")}", KernelBenchmark.Name(l.Path)),
            _ => throw new NotSupportedException(call.GetType().Name),
        };
        return new KernelCase
        {
            Work = work, Kind = kind, Layer = layer, Count = count, Shape = shape, ChannelsLast = call.ChannelsLast, Chosen = chosen, Paths = paths,
        };
    }

    /// <summary>One line for the log.</summary>
    public string Describe() =>
        $"{Work}: {Kind} {Layer} x{Count} ({Shape}{(ChannelsLast ? ", channels-last" : "")}): "
        + string.Join(", ", Paths.Select(p => $"{p.Path} {p.MedianSeconds * 1e3:0.00} ms")) + $"; chosen {Chosen}";
}

/// <summary>The result of <c>sdpipe bench kernels</c>.</summary>
public sealed record KernelReport
{
    /// <summary>The JSON layout version this code writes.</summary>
    public const int CurrentSchemaVersion = 1;

    /// <summary>The JSON layout version.</summary>
    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>Always <c>kernels</c>.</summary>
    public string Benchmark => "kernels";

    /// <summary>When the run finished.</summary>
    public required DateTime CreatedUtc { get; init; }

    /// <summary>Machine, versions and threads.</summary>
    public required MachineInfo Machine { get; init; }

    /// <summary><c>sd15</c> (built in) or the config file's path.</summary>
    public required string ModelConfig { get; init; }

    /// <summary>Whether oneDNN was on (the numerics self-check, or <c>--onednn</c>, decides).</summary>
    public required bool OneDnn { get; init; }

    /// <summary>Seed of the random weights and inputs.</summary>
    public required int Seed { get; init; }

    /// <summary>Timed rounds per case.</summary>
    public required int Repeats { get; init; }

    /// <summary>Every distinct call of each work, in the order the work first made it.</summary>
    public required IReadOnlyList<KernelCase> Cases { get; init; }

    /// <summary>The cases whose chosen path is more than <see cref="KernelBenchmark.Margin"/> slower than another.</summary>
    public IReadOnlyList<KernelCase> SlowerChoices => Cases.Where(c => !c.ChoiceHolds).ToList();

    /// <summary>The cases where a path's output is not libtorch's to float32 rounding.</summary>
    public IReadOnlyList<KernelCase> Disagreements => Cases.Where(c => !c.OutputsAgree).ToList();

    /// <summary>The report as indented snake_case JSON.</summary>
    public string ToJson() => JsonConvert.SerializeObject(this, BenchmarkReport.Settings);

    /// <summary>Writes <see cref="ToJson"/> to <paramref name="path"/> atomically, creating its folder.</summary>
    public void Write(string path) => BenchmarkReport.WriteJson(path, ToJson());

    /// <summary>
    /// A table per work: each case's paths in milliseconds, the chosen one marked, and a closing line with the work's time
    /// by the rules' choices, by the fastest path of every case, and by libtorch's own paths for the same calls (oneDNN,
    /// libtorch's GroupNorm and attention on the same inputs: for the VAE, channels-last ones, which with
    /// <c>runtime.kernels=off</c> would not be, so that figure is not what <c>off</c> runs).
    /// </summary>
    public string Format()
    {
        var text = new StringBuilder();
        text.AppendLine($"CPU: {Machine.CpuModel}; {Machine.Threads} threads; oneDNN {(OneDnn ? "on" : "off")}; median of {Repeats} interleaved rounds; * = the path the rules choose");
        foreach (var work in Cases.GroupBy(c => c.Work))
        {
            text.AppendLine();
            text.AppendLine(work.Key);
            foreach (var c in work)
            {
                string paths = string.Join("  ", c.Paths.Select(p => $"{(p.Path == c.Chosen ? "*" : "")}{p.Path} {Ms(p.MedianSeconds)}"));
                string verdict = (c.ChoiceHolds ? "" : $"  <- {c.Fastest} is {(c.ChosenOverFastest - 1) * 100:0}% faster")
                    + (c.OutputsAgree ? "" : $"  <- OUTPUT DIFFERS: {string.Join(", ", c.Paths.Where(p => !(p.RelativeDifference <= KernelBenchmark.Tolerance)).Select(p => $"{p.Path} {p.RelativeDifference:0.0e+0}"))}");
                text.AppendLine(CultureInfo.InvariantCulture, $"  {c.Kind,-11} {c.Layer,-42} x{c.Count,-3} {c.Shape + (c.ChannelsLast ? " (cl)" : ""),-46} {paths}{verdict}");
            }
            double chosen = work.Sum(c => c.Count * c.Median(c.Chosen));
            double fastest = work.Sum(c => c.Count * c.Paths.Min(p => p.MedianSeconds));
            double layers = work.Sum(c => c.Count * c.Paths[0].MedianSeconds);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  these calls: {Ms(chosen)} as chosen, {Ms(fastest)} by the fastest path of each, {Ms(layers)} by libtorch's paths on the same inputs");
        }
        text.AppendLine();
        text.AppendLine(SlowerChoices.Count == 0
            ? "every rule chose the fastest path here (within 5%)"
            : $"{SlowerChoices.Count} of {Cases.Count} choices are more than 5% slower than another path here ({Ms(SlowerChoices.Sum(c => c.SecondsLost))} over the works)");
        if (Disagreements.Count > 0)
            text.AppendLine($"{Disagreements.Count} cases have a path whose output is not libtorch's to float32 rounding (relative {KernelBenchmark.Tolerance:0e+0}): a kernel is wrong on this CPU");
        return text.ToString();
    }

    private static string Ms(double seconds) => string.Create(CultureInfo.InvariantCulture, $"{seconds * 1e3:0.00} ms");
}
