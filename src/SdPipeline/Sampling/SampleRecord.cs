using Newtonsoft.Json;

namespace SdPipeline.Sampling;

/// <summary>One prompt and seed, sampled from both models: a line of <c>samples.json</c>.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Seed">The seed (the same initial noise for both models).</param>
/// <param name="Heldout">Whether the prompt is a held-out caption.</param>
/// <param name="Base">The base model's image, relative to the artifact.</param>
/// <param name="FineTuned">The fine-tuned model's image.</param>
/// <param name="BaseFlag">Why the base image is flagged (all black, constant), or null.</param>
/// <param name="FineTunedFlag">Why the fine-tuned image is flagged, or null.</param>
public sealed record SampleRecord(
    [property: JsonProperty("prompt")] string Prompt,
    [property: JsonProperty("seed")] long Seed,
    [property: JsonProperty("heldout")] bool Heldout,
    [property: JsonProperty("base")] string Base,
    [property: JsonProperty("fine_tuned")] string FineTuned,
    [property: JsonProperty("base_flag")] string? BaseFlag,
    [property: JsonProperty("fine_tuned_flag")] string? FineTunedFlag);
