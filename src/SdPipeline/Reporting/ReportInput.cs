using SdPipeline.Benchmarks.Sweep;

namespace SdPipeline.Reporting;

/// <summary>
/// Everything the report shows, gathered from the stages' artifacts. Only the overview is required: each
/// other part defaults to empty and its section then says so (or, for the benchmark and prompt
/// adherence, is left out), so a report can be written from whatever the run produced.
/// </summary>
/// <param name="Overview">What the run was.</param>
public sealed record ReportInput(RunOverview Overview)
{
    /// <summary>Every stage of the chain, in pipeline order.</summary>
    public IReadOnlyList<StageRun> Stages { get; init; } = [];

    /// <summary>Config keys whose effective value differs from the default (see <see cref="ConfigDifference.From"/>).</summary>
    public IReadOnlyList<ConfigDifference> ConfigDifferences { get; init; } = [];

    /// <summary>The training stage's metrics log (see <see cref="MetricsLog.Read"/>).</summary>
    public MetricsLog Metrics { get; init; } = MetricsLog.Empty;

    /// <summary>The train stage's validation images (<c>train.validation_prompts</c>), or null when it sampled none.</summary>
    public ValidationGrid? Validation { get; init; }

    /// <summary>The sample stage's images, one set per prompt.</summary>
    public IReadOnlyList<SampleSet> Samples { get; init; } = [];

    /// <summary>The benchmark table, or null when no benchmark ran.</summary>
    public SweepTable? Benchmark { get; init; }

    /// <summary>
    /// Warnings from earlier stages (skipped data items, …). Flagged sample images and fp16-skipped steps
    /// need not be listed: the report adds them from <see cref="Samples"/> and <see cref="Metrics"/>.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The training method, trainable parameters and LoRA details, or null when the train stage did not say.</summary>
    public TrainingMethod? Method { get; init; }

    /// <summary>Prompt adherence (see <see cref="PromptAdherence.Evaluate"/>), or null when it was not measured.</summary>
    public AdherenceResult? Adherence { get; init; }
}
