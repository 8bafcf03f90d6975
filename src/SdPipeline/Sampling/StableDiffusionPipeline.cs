using SdPipeline.Images;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Schedulers;
using SdPipeline.Tokenization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>
/// Text to image with the components of a diffusers folder: prompt and negative prompt → CLIP embeddings →
/// sampler loop with classifier-free guidance → VAE decode (always float32) → 8-bit images. Mirrors
/// diffusers' <c>StableDiffusionPipeline.__call__</c>; each image starts from noise drawn from its own
/// seeded generator, so a seed gives the same image every time on the CPU, whatever the batch.
/// </summary>
public sealed class StableDiffusionPipeline : ITextToImagePipeline
{
    /// <summary>Assembles a pipeline from loaded components.</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae,
        SchedulerConfig schedulerConfig, Device device)
    {
        Tokenizer = tokenizer;
        TextEncoder = textEncoder;
        Unet = unet;
        Vae = vae;
        SchedulerConfig = schedulerConfig;
        Device = device;
    }

    /// <summary>The tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>The text encoder.</summary>
    public ClipTextModel TextEncoder { get; }

    /// <summary>The denoiser.</summary>
    public UNet2DConditionModel Unet { get; }

    /// <summary>LoRA adapters applied to the UNet and text encoder (see <c>SampleStage.WithLora</c>), or null; disposed with the pipeline.</summary>
    public Lora.LoraNetwork? Lora { get; set; }

    /// <summary>The autoencoder.</summary>
    public AutoencoderKL Vae { get; }

    /// <summary>The folder's <c>scheduler_config.json</c>; every sampler is built from it.</summary>
    public SchedulerConfig SchedulerConfig { get; }

    /// <summary>Where the models run.</summary>
    public Device Device { get; }

    /// <summary>The VAE's spatial downsampling factor (8 for Stable Diffusion).</summary>
    public int VaeScaleFactor => 1 << (Vae.Config.BlockOutChannels.Count - 1);

    /// <summary>Loads every component of a diffusers folder (weights strictly) onto <paramref name="device"/>, in eval mode.</summary>
    /// <param name="folder">The diffusers folder.</param>
    /// <param name="device">Where the models run.</param>
    /// <param name="variant">Precision variant of the weight files, or null.</param>
    /// <param name="cleaning">Whose CLIP text clean-up the tokenizer reproduces (default: transformers', as diffusers).</param>
    public static StableDiffusionPipeline FromFolder(DiffusersFolder folder, Device device, string? variant = null,
        ClipTextCleaning cleaning = ClipTextCleaning.Transformers)
    {
        var tokenizer = ClipTokenizer.FromFolder(folder.Component("tokenizer"), cleaning);
        var textEncoder = ClipTextModel.FromPretrained(folder, variant: variant);
        var unet = UNet2DConditionModel.FromFolder(folder, variant);
        var vae = AutoencoderKL.FromFolder(folder, variant);
        var scheduler = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        foreach (nn.Module module in new nn.Module[] { textEncoder, unet, vae })
        {
            module.to(device);
            module.eval();
        }
        return new StableDiffusionPipeline(tokenizer, textEncoder, unet, vae, scheduler, device);
    }

    /// <summary>Text embeddings [B, 77, D] of <paramref name="prompts"/> (last hidden state, or an earlier layer with clip skip).</summary>
    public Tensor EncodePrompts(IReadOnlyList<string> prompts, int clipSkip = 0)
    {
        using var _ = torch.no_grad();
        using var ids = Tokenizer.EncodeBatch(prompts);
        return TextEncoder.Encode(ids.to(Device), clipSkip);
    }

    /// <inheritdoc />
    TextToImageResult ITextToImagePipeline.Generate(TextToImageRequest request) => Generate(request);

    /// <summary>Generates one image per prompt and seed.</summary>
    /// <param name="request">What to generate.</param>
    /// <param name="initialLatents">Starting latents [B, C, h, w] instead of seeded noise (parity tests); multiplied by the sampler's initial sigma.</param>
    /// <param name="onStep">Called after each sampler step with (step index, latents).</param>
    public TextToImageResult Generate(TextToImageRequest request, Tensor? initialLatents = null, Action<int, Tensor>? onStep = null)
    {
        if (request.Prompts.Count != request.Seeds.Count)
            throw new ArgumentException($"{request.Prompts.Count} prompts but {request.Seeds.Count} seeds: give one seed per prompt", nameof(request));
        if (request.NegativePrompts is { } negatives && negatives.Count != request.Prompts.Count)
            throw new ArgumentException($"{request.Prompts.Count} prompts but {negatives.Count} negative prompts: give one per prompt", nameof(request));
        if (request.Width % VaeScaleFactor != 0 || request.Height % VaeScaleFactor != 0)
            throw new ArgumentException($"{request.Width}x{request.Height} is not a multiple of the VAE factor {VaeScaleFactor}", nameof(request));

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool guided = request.GuidanceScale > 1.0;
        var cond = EncodePrompts(request.Prompts, request.ClipSkip);
        var embeddings = guided
            ? torch.cat([EncodePrompts(request.NegativePrompts ?? Enumerable.Repeat(request.NegativePrompt ?? "", request.Prompts.Count).ToList(), request.ClipSkip), cond])
            : cond;

        var latents = DenoisingLoop.Run(request, SchedulerConfig, [Unet.Config.InChannels, request.Height / VaeScaleFactor, request.Width / VaeScaleFactor],
            Device, guided, (input, t) => Unet.call(input, t, embeddings), initialLatents, onStep);
        var decoded = Vae.Decode(latents / Vae.Config.ScalingFactor);
        var images = ImagePostprocessor.ToImages(decoded);
        return new TextToImageResult(images, latents.cpu().MoveToOuterDisposeScope(), decoded.cpu().MoveToOuterDisposeScope());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Lora?.Dispose();
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
