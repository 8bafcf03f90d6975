namespace SdPipeline.Reporting;

/// <summary>
/// The figures every output derives from a <see cref="ReportInput"/>, computed once so report.html,
/// report.md and summary.json always agree.
/// </summary>
public sealed class ReportFacts
{
    private ReportFacts(ReportInput input)
    {
        Input = input;
        var train = input.Metrics.Train;
        var losses = train.Where(m => m.Loss is { } l && double.IsFinite(l)).Select(m => m.Loss!.Value).ToList();
        Steps = train.Count;
        FinalLoss = losses.Count > 0 ? losses[^1] : null;
        FinalLossSmoothed = losses.Count > 0 ? Smoothing.Ema(losses, Smoothing.BetaFor(losses.Count))[^1] : null;
        SkippedSteps = train.Count(m => m.Skipped);
        LastEval = input.Metrics.Eval.Count > 0 ? input.Metrics.Eval[^1] : null;
        StepTimes = StepTimeRows(train);
        PeakMemoryBytes = train.Select(m => m.PeakMemoryBytes).Max();
        FlaggedImages = input.Samples
            .SelectMany(set => Flagged(set, ModelVariant.Base, set.Base).Concat(Flagged(set, ModelVariant.FineTuned, set.FineTuned)))
            .ToList();
        Warnings = input.Warnings
            .Concat(FlaggedImages.Select(f => $"{Label(f.Model)} sample for \"{f.Prompt}\" (seed {f.Seed}) is flagged: {f.Flag}"))
            .Concat(SkippedSteps > 0 ? [$"{SkippedSteps} of {Steps} training steps were skipped by the fp16 loss scaler (inf/NaN gradients)"] : [])
            .ToList();
    }

    /// <summary>The input the facts come from.</summary>
    public ReportInput Input { get; }

    /// <summary>Training steps logged.</summary>
    public int Steps { get; }

    /// <summary>Loss of the last step with a finite loss.</summary>
    public double? FinalLoss { get; }

    /// <summary>The smoothed loss curve's last value (the plot's EMA).</summary>
    public double? FinalLossSmoothed { get; }

    /// <summary>Steps the fp16 scaler skipped.</summary>
    public int SkippedSteps { get; }

    /// <summary>The last held-out evaluation.</summary>
    public EvalMetric? LastEval { get; }

    /// <summary>Step time, throughput and memory statistics (rows only for figures the log has).</summary>
    public IReadOnlyList<StepTimeRow> StepTimes { get; }

    /// <summary>The largest peak memory logged.</summary>
    public long? PeakMemoryBytes { get; }

    /// <summary>Every sample image with a flag.</summary>
    public IReadOnlyList<FlaggedImage> FlaggedImages { get; }

    /// <summary>The input's warnings, then one per flagged image and one for fp16-skipped steps.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>Whether the step-time statistics leave out the first (warm-up) step.</summary>
    public bool WarmupExcluded => Input.Metrics.Train.Count > 1;

    /// <summary>Computes the facts of <paramref name="input"/>.</summary>
    public static ReportFacts From(ReportInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        input.Benchmark?.Validate();
        return new ReportFacts(input);
    }

    /// <summary>What the peak memory figure is on the run's device: the two are not comparable with each other.</summary>
    public string PeakMemoryLabel => Input.Overview.Device.StartsWith("cuda", StringComparison.Ordinal)
        ? "peak GPU memory (nvidia-smi's figure for the process, sampled each step)"
        : "peak memory (the process's resident set, loading included)";

    /// <summary>The label the report uses for a model variant: "base" or "fine-tuned".</summary>
    public static string Label(ModelVariant model) => model == ModelVariant.Base ? "base" : "fine-tuned";

    private static IEnumerable<FlaggedImage> Flagged(SampleSet set, ModelVariant model, IEnumerable<SampleImage> images) =>
        images.SelectMany(i => i.Flags.Select(flag => new FlaggedImage(model, set.Prompt, i.Seed, flag)));

    private static IReadOnlyList<StepTimeRow> StepTimeRows(IReadOnlyList<TrainMetric> train)
    {
        // The first step pays for allocation and kernel selection; it would skew every mean. Peak memory is a running
        // maximum, whose median says nothing: it is the headline figure and the plot, not a row here.
        var steps = train.Count > 1 ? train.Skip(1).ToList() : train.ToList();
        var rows = new List<StepTimeRow>();
        Add(rows, "step time (s)", steps.Select(m => m.StepTimeSeconds));
        Add(rows, "throughput (images/s)", steps.Select(m => m.ImagesPerSecond));
        return rows;
    }

    private static void Add(List<StepTimeRow> rows, string figure, IEnumerable<double?> values)
    {
        var list = values.Where(v => v is { } x && double.IsFinite(x)).Select(v => v!.Value).Order().ToList();
        if (list.Count == 0) return;
        double median = list.Count % 2 == 1 ? list[list.Count / 2] : (list[list.Count / 2 - 1] + list[list.Count / 2]) / 2;
        rows.Add(new StepTimeRow(figure, median, list.Average(), list[0], list[^1], list.Count));
    }
}
