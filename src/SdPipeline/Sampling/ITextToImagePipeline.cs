namespace SdPipeline.Sampling;

/// <summary>A loaded text-to-image pipeline (<see cref="StableDiffusionPipeline"/> or <see cref="StableDiffusionXLPipeline"/>), as the sample stage uses it.</summary>
public interface ITextToImagePipeline : IDisposable
{
    /// <summary>One image per prompt and seed, from seeded noise.</summary>
    TextToImageResult Generate(TextToImageRequest request);
}
