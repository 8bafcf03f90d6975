namespace SdPipeline.Reporting;

/// <summary>The samples of one prompt: the same seeds from the base and from the fine-tuned weights.</summary>
/// <param name="Prompt">The prompt text.</param>
/// <param name="Base">Images from the base model, one per seed (empty when the base was not sampled).</param>
/// <param name="FineTuned">Images from the fine-tuned model, one per seed, in the same seed order.</param>
public sealed record SampleSet(string Prompt, IReadOnlyList<SampleImage> Base, IReadOnlyList<SampleImage> FineTuned)
{
    /// <summary>The seeds, in column order.</summary>
    public IReadOnlyList<long> Seeds => (FineTuned.Count >= Base.Count ? FineTuned : Base).Select(i => i.Seed).ToList();
}
