namespace SdPipeline.Sampling;

/// <summary>What to generate: one image per (prompt, seed) pair, as diffusers' pipeline call with per-image generators.</summary>
/// <param name="Prompts">The prompts.</param>
/// <param name="Seeds">One seed per prompt (same length as <paramref name="Prompts"/>): image i starts from <c>randn</c> of generator seeded with Seeds[i].</param>
/// <param name="NegativePrompt">
/// Negative prompt for classifier-free guidance ("" for the unconditional embedding). Null means none: SD encodes ""
/// instead, SDXL uses zero embeddings when the model sets <c>force_zeros_for_empty_prompt</c> (diffusers' behaviour).
/// </param>
/// <param name="GuidanceScale">Classifier-free guidance scale; 1 or less disables guidance (no unconditional pass).</param>
/// <param name="Steps">Sampler steps.</param>
/// <param name="Sampler">A name from <see cref="Schedulers.SchedulerFactory.Names"/>.</param>
/// <param name="Width">Image width in pixels (a multiple of the VAE's downsampling factor).</param>
/// <param name="Height">Image height in pixels.</param>
/// <param name="ClipSkip">Text-encoder layers to skip (diffusers' clip_skip; 0 = last layer).</param>
public sealed record TextToImageRequest(
    IReadOnlyList<string> Prompts,
    IReadOnlyList<long> Seeds,
    string? NegativePrompt = "",
    double GuidanceScale = 7.5,
    int Steps = 50,
    string Sampler = "pndm",
    int Width = 512,
    int Height = 512,
    int ClipSkip = 0)
{
    /// <summary>
    /// One negative prompt per prompt (diffusers' <c>negative_prompt</c> as a list), in place of
    /// <see cref="NegativePrompt"/> for all; null uses <see cref="NegativePrompt"/>.
    /// </summary>
    public IReadOnlyList<string>? NegativePrompts { get; init; }
}
