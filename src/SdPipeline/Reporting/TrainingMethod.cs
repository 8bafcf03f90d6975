using SdPipeline.Config;

namespace SdPipeline.Reporting;

/// <summary>How the model was trained, from the train stage's summary (and the sample stage's, for the LoRA strength).</summary>
/// <param name="Method"><c>full</c> or <c>lora</c>.</param>
/// <param name="TrainableParameters">Parameters the optimizer updated (a LoRA run: the adapters').</param>
public sealed record TrainingMethod(string Method, long? TrainableParameters)
{
    /// <summary>Whether this was a LoRA run.</summary>
    public bool IsLora => Method == TrainingMethods.Lora;

    /// <summary>LoRA rank r.</summary>
    public int? Rank { get; init; }

    /// <summary>LoRA alpha.</summary>
    public double? Alpha { get; init; }

    /// <summary>The layers with adapters (train.lora_targets, and text_encoder when it had adapters).</summary>
    public IReadOnlyList<string> Targets { get; init; } = [];

    /// <summary>Parameters of the frozen models the adapters adapt.</summary>
    public long? BaseParameters { get; init; }

    /// <summary>The exported adapter files and their sizes in bytes.</summary>
    public IReadOnlyDictionary<string, long> Files { get; init; } = new Dictionary<string, long>();

    /// <summary>The strength the LoRA was sampled at (sample.lora_scale), when samples used one.</summary>
    public double? SampleScale { get; init; }

    /// <summary>The benchmark's LoRA cell against the full fine-tune baseline (step time and peak memory), when it has both.</summary>
    public Benchmarks.Sweep.SweepEffect? BenchmarkComparison { get; init; }

    /// <summary>What the report calls the second row of samples: "fine-tuned", or "base + LoRA" (with its strength).</summary>
    public string TunedLabel => IsLora || SampleScale is not null ? "base + LoRA" + (SampleScale is { } s && s != 1 ? $" ×{s:0.##}" : "") : "fine-tuned";
}
