using SdPipeline.Images;

namespace SdPipeline.Reporting;

/// <summary>A sample image that <see cref="ImageFlags"/> (or the sample stage) flagged.</summary>
/// <param name="Model">Base or fine-tuned.</param>
/// <param name="Prompt">The prompt of its set.</param>
/// <param name="Seed">Its seed.</param>
/// <param name="Flag">Why it was flagged.</param>
public sealed record FlaggedImage(ModelVariant Model, string Prompt, long Seed, string Flag);
