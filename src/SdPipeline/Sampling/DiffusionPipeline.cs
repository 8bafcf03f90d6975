using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>
/// What <see cref="StableDiffusionPipeline"/> and <see cref="StableDiffusionXLPipeline"/> share, as diffusers' pipelines
/// share <c>DiffusionPipeline</c>: the UNet, the VAE, the scheduler config, the device, the optional LoRA adapters, and
/// the end of <c>__call__</c> (the sampler loop from seeded noise, the VAE decode in float32, 8-bit images). Each
/// subclass encodes its prompts its own way and hands the UNet call to <see cref="DenoiseAndDecode"/>.
/// </summary>
public abstract class DiffusionPipeline : ITextToImagePipeline
{
    /// <summary>Assembles the shared components.</summary>
    protected DiffusionPipeline(UNet2DConditionModel unet, AutoencoderKL vae, SchedulerConfig schedulerConfig, Device device)
    {
        Unet = unet;
        Vae = vae;
        SchedulerConfig = schedulerConfig;
        Device = device;
    }

    /// <summary>The denoiser.</summary>
    public UNet2DConditionModel Unet { get; }

    /// <summary>The autoencoder.</summary>
    public AutoencoderKL Vae { get; }

    /// <summary>
    /// The folder's <c>scheduler_config.json</c>; every sampler is built from it. Set for adapters trained to another
    /// prediction type than the base's (a LoRA file records none).
    /// </summary>
    public SchedulerConfig SchedulerConfig { get; set; }

    /// <summary>Where the models run.</summary>
    public Device Device { get; }

    /// <summary>LoRA adapters applied to the UNet and text encoders (see <c>SampleStage.WithLora</c>), or null; disposed with the pipeline.</summary>
    public Lora.LoraNetwork? Lora { get; set; }

    /// <summary>The VAE's spatial downsampling factor (8 for Stable Diffusion and SDXL).</summary>
    public int VaeScaleFactor => Vae.Config.VaeScaleFactor;

    /// <inheritdoc />
    TextToImageResult ITextToImagePipeline.Generate(TextToImageRequest request) => Generate(request);

    /// <summary>Generates one image per prompt and seed.</summary>
    /// <param name="request">What to generate.</param>
    /// <param name="initialLatents">Starting latents [B, C, h, w] instead of seeded noise (parity tests); multiplied by the sampler's initial sigma.</param>
    /// <param name="onStep">Called after each sampler step with (step index, latents).</param>
    public abstract TextToImageResult Generate(TextToImageRequest request, Tensor? initialLatents = null, Action<int, Tensor>? onStep = null);

    /// <summary>Refuses a request whose seeds do not match its prompts or whose size the VAE cannot produce.</summary>
    protected void CheckRequest(TextToImageRequest request)
    {
        if (request.Prompts.Count != request.Seeds.Count)
            throw new ArgumentException($"{request.Prompts.Count} prompts but {request.Seeds.Count} seeds: give one seed per prompt", nameof(request));
        if (request.Width % VaeScaleFactor != 0 || request.Height % VaeScaleFactor != 0)
            throw new ArgumentException($"{request.Width}x{request.Height} is not a multiple of the VAE factor {VaeScaleFactor}", nameof(request));
    }

    /// <summary>
    /// The sampler loop with <paramref name="predict"/> as the UNet call (on the batch doubled for guidance when
    /// <paramref name="guided"/>), then the decode; the result's tensors are on the CPU, outside the caller's dispose scope.
    /// </summary>
    protected TextToImageResult DenoiseAndDecode(TextToImageRequest request, bool guided, Func<Tensor, Tensor, Tensor> predict,
        Tensor? initialLatents, Action<int, Tensor>? onStep)
    {
        var latents = DenoisingLoop.Run(request, SchedulerConfig, [Unet.Config.InChannels, request.Height / VaeScaleFactor, request.Width / VaeScaleFactor],
            Device, guided, predict, initialLatents, onStep);
        // A half-precision VAE overflows (SDXL's force_upcast): decode in float32 whatever the other components run in.
        var decoded = Vae.Decode(Unscale(latents).to(ScalarType.Float32));
        var images = ImagePostprocessor.ToImages(decoded);
        return new TextToImageResult(images, latents.cpu().MoveToOuterDisposeScope(), decoded.cpu().MoveToOuterDisposeScope());
    }

    /// <summary>The denoised latents as the VAE decodes them: diffusers' Stable Diffusion pipeline divides by the scaling factor.</summary>
    protected virtual Tensor Unscale(Tensor latents) => latents / Vae.Config.ScalingFactor;

    /// <inheritdoc />
    public void Dispose()
    {
        Lora?.Dispose();
        DisposeTextEncoders();
        Unet.Dispose();
        Vae.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the pipeline's text encoders.</summary>
    protected abstract void DisposeTextEncoders();
}
