namespace SdPipeline.Sampling;

/// <summary>
/// The sample stage's result, as its manifest's <c>summary</c> holds it (snake_case keys) and as the report stage
/// reads it back (<c>StageWorkspace.ResultOf&lt;SampleSummary&gt;</c>).
/// </summary>
public sealed record SampleSummary
{
    /// <summary>Prompt × seed pairs, each sampled from both models.</summary>
    public int Samples { get; init; }

    /// <summary>Distinct prompts.</summary>
    public int Prompts { get; init; }

    /// <summary>The sampler's name (<c>Schedulers.SchedulerFactory.Names</c>).</summary>
    public string Sampler { get; init; } = "";

    /// <summary>Pairs with an image <c>Images.ImageFlags</c> flagged (in either model).</summary>
    public int Flagged { get; init; }

    /// <summary>The LoRA file the fine-tuned images used, or null when they came from a fully fine-tuned model.</summary>
    public string? Lora { get; init; }

    /// <summary>The strength the LoRA was applied at, or null without a LoRA.</summary>
    public double? LoraScale { get; init; }
}
