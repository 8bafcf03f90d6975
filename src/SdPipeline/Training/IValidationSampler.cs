using SdPipeline.Weights;
namespace SdPipeline.Training;

/// <summary>
/// Makes the validation images from the weights being trained (diffusers' <c>log_validation</c>). The train stage is
/// handed a factory for one from above (the sampling layer's, wired in <c>ProjectStages</c>), so training never imports
/// sampling.
/// </summary>
public interface IValidationSampler : IDisposable
{
    /// <summary>The prompts, in the order of the images <see cref="Sample"/> returns.</summary>
    IReadOnlyList<string> Prompts { get; }

    /// <summary>
    /// One PNG per prompt from <paramref name="models"/> as they are now (the caller has put them in eval mode, swapped in
    /// the EMA weights and entered the autocast region). It must draw no random number from any generator training uses.
    /// </summary>
    IReadOnlyList<byte[]> Sample(TrainedModels models);
}

/// <summary>What a validation sampler is built from.</summary>
/// <param name="Prompts"><c>train.validation_prompts</c>.</param>
/// <param name="Seed">The seed of every image (<c>train.seed</c>): each row of the grid starts from the same noise.</param>
/// <param name="Steps">Sampler steps.</param>
/// <param name="GuidanceScale">Classifier-free guidance scale.</param>
/// <param name="Width">Image width in pixels.</param>
/// <param name="Height">Image height in pixels.</param>
/// <param name="ClipSkip"><c>model.clip_skip</c>.</param>
/// <param name="ModelFolder">The base model's diffusers folder (its VAE and scheduler config).</param>
/// <param name="PredictionType">What the trained UNet predicts (it may differ from the base scheduler config's).</param>
/// <param name="Device">Where the models run.</param>
public sealed record ValidationRequest(IReadOnlyList<string> Prompts, long Seed, int Steps, double GuidanceScale, int Width, int Height,
    int ClipSkip, DiffusersFolder ModelFolder, string PredictionType, TorchSharp.torch.Device Device);
