using System.Globalization;
using SdPipeline.Images;
using SdPipeline.Models.Vae;
using SdPipeline.Pipeline;
using SdPipeline.Schedulers;
using SdPipeline.Training;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Sampling;

/// <summary>
/// The validation images of a training run, sampled from the models being trained: their tokenizer, text encoder and
/// UNet (with any LoRA adapters attached), the base model's VAE, and the base's own scheduler with the prediction type the
/// run trains, as diffusers' <c>log_validation</c> builds a pipeline around the training UNet. Each prompt starts from
/// noise of its own generator seeded with <see cref="ValidationRequest.Seed"/>, so the images of one prompt differ only
/// by the weights, step to step. For an SDXL model the pipeline is <see cref="StableDiffusionXLPipeline"/> around both
/// tokenizers and text encoders being trained, called as <c>train_text_to_image_sdxl.py</c>'s <c>log_validation</c> calls it:
/// no negative prompt (zero embeddings under <c>force_zeros_for_empty_prompt</c>), the VAE decoding in float32.
/// </summary>
public sealed class ValidationSampler : IValidationSampler
{
    private readonly ValidationRequest _request;
    private readonly AutoencoderKL _vae;
    private readonly SchedulerConfig _scheduler;
    private readonly string _sampler;
    private readonly bool _sdxl;
    private readonly bool _forceZerosForEmptyPrompt;

    private ValidationSampler(ValidationRequest request)
    {
        _request = request;
        var folder = request.ModelFolder;
        var shipped = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        _scheduler = shipped with { PredictionType = request.PredictionType };
        _sampler = SchedulerFactory.ShippedName(shipped);
        _sdxl = StableDiffusionXLPipeline.IsSdxlFolder(folder);
        _forceZerosForEmptyPrompt = _sdxl && StableDiffusionXLPipeline.ReadForceZerosForEmptyPrompt(folder);
        _vae = AutoencoderKL.FromFolder(folder);
        _vae.to(request.Device);
        _vae.eval();
    }

    /// <summary>Loads the base model's VAE and scheduler config for <paramref name="request"/>.</summary>
    public static IValidationSampler Create(ValidationRequest request) => new ValidationSampler(request);

    /// <inheritdoc />
    public IReadOnlyList<string> Prompts => _request.Prompts;

    /// <inheritdoc />
    public IReadOnlyList<byte[]> Sample(TrainedModels models)
    {
        ArgumentNullException.ThrowIfNull(models);
        // Borrowed components: the pipeline is not disposed, which would dispose the models being trained.
#pragma warning disable CA2000
        ITextToImagePipeline pipeline = _sdxl ? Sdxl(models) : new StableDiffusionPipeline(models.Tokenizer, models.TextEncoder, models.Unet, _vae, _scheduler, _request.Device);
#pragma warning restore CA2000
        var images = new List<byte[]>();
        foreach (var (prompt, index) in _request.Prompts.Select((p, i) => (p, i)))
        {
            var request = new TextToImageRequest([prompt], [_request.Seed], _sdxl ? null : "", _request.GuidanceScale, _request.Steps, _sampler,
                _request.Width, _request.Height, _request.ClipSkip);
            var result = pipeline.Generate(request);
            try
            {
                var text = Infotext.TextChunks(request, 0);
                text["prompt_index"] = index.ToString(CultureInfo.InvariantCulture);
                images.Add(ImageCodec.EncodePng(result.Images[0], text));
            }
            finally
            {
                result.Latents.Dispose();
                result.Decoded.Dispose();
            }
        }
        return images;
    }

    private StableDiffusionXLPipeline Sdxl(TrainedModels models)
    {
        if (models.TextEncoder2 is null || models.Tokenizer2 is null)
            throw new InvalidOperationException("SDXL validation images need the second text encoder and tokenizer in the trained models (the train stage loads them when train.validation_prompts is set)");
        return new StableDiffusionXLPipeline(new SdxlPromptEncoder(models.Tokenizer, models.Tokenizer2, models.TextEncoder, models.TextEncoder2),
            models.Unet, _vae, _scheduler, _forceZerosForEmptyPrompt, _request.Device);
    }

    /// <inheritdoc />
    public void Dispose() => _vae.Dispose();
}
