using Newtonsoft.Json.Linq;

namespace SdPipeline.Training;

/// <summary>
/// The train stage's result, as its manifest's <c>summary</c> holds it (snake_case keys) and as the report stage
/// reads it back: <c>Manifest.SummaryAs&lt;TrainSummary&gt;()</c>.
/// </summary>
public sealed record TrainSummary
{
    /// <summary>Optimizer steps taken in total.</summary>
    public long Steps { get; init; }

    /// <summary>The checkpoint step this run resumed from, or null for a fresh run.</summary>
    public long? ResumedFromStep { get; init; }

    /// <summary>The finished shorter run this one continued (<see cref="TrainContinuation"/>), or null when it started from the base model.</summary>
    public ContinuedRun? ContinuedFrom { get; init; }

    /// <summary>The smoothed training loss at the end.</summary>
    public double FinalLoss { get; init; }

    /// <summary>The held-out loss, or null without a held-out split.</summary>
    public double? HeldoutLoss { get; init; }

    /// <summary>The held-out loss with the captions shuffled (the gap to <see cref="HeldoutLoss"/> is what the captions teach).</summary>
    public double? HeldoutLossShuffled { get; init; }

    /// <summary>Median seconds per optimizer step.</summary>
    public double? MedianStepSeconds { get; init; }

    /// <summary>Steps skipped by the fp16 loss scaler.</summary>
    public long SkippedSteps { get; init; }

    /// <summary>The process's peak memory.</summary>
    public long? PeakMemoryBytes { get; init; }

    /// <summary>The pre-flight memory estimate (<see cref="MemoryEstimate.ToJson"/>).</summary>
    public JObject MemoryEstimate { get; init; } = new();

    /// <summary><c>epsilon</c> or <c>v_prediction</c>.</summary>
    public string PredictionType { get; init; } = "";

    /// <summary>Elements trained (the adapters' with LoRA).</summary>
    public long TrainableParameters { get; init; }

    /// <summary>The device trained on.</summary>
    public string Device { get; init; } = "";

    /// <summary>The numerics self-check's verdict (<see cref="Numerics.NumericsVerdict.ToJson"/>); null in a summary written before the check existed.</summary>
    public JObject? Numerics { get; init; }

    /// <summary>What the self-check found, without the log's "numerics: " label (the report shows it under its own); null without a verdict.</summary>
    [Newtonsoft.Json.JsonIgnore]
    public string? NumericsFinding => SdPipeline.Numerics.NumericsVerdict.FromJson(Numerics)?.Finding;

    /// <summary><c>train.method</c>.</summary>
    public string Method { get; init; } = "";

    /// <summary>The adapters, for a LoRA run; null for a full fine-tune.</summary>
    public LoraSummary? Lora { get; init; }
}

/// <summary>What a LoRA run trained and wrote.</summary>
/// <param name="Rank">r.</param>
/// <param name="Alpha">lora_alpha.</param>
/// <param name="Dropout">Adapter input dropout.</param>
/// <param name="Targets"><c>train.lora_targets</c>.</param>
/// <param name="TextEncoder">Whether the text encoder had adapters.</param>
/// <param name="Modules">Adapted layers.</param>
/// <param name="BaseParameters">Elements of the frozen models the adapters sit on.</param>
/// <param name="Files">The written adapter files, name → bytes.</param>
public sealed record LoraSummary(int Rank, double Alpha, double Dropout, IReadOnlyList<string> Targets, bool TextEncoder, int Modules,
    long BaseParameters, IReadOnlyDictionary<string, long> Files);
