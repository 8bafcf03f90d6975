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
public sealed class StableDiffusionPipeline : DiffusionPipeline
{
    /// <summary>Assembles a pipeline from loaded components.</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae,
        SchedulerConfig schedulerConfig, Device device) : base(unet, vae, schedulerConfig, device)
    {
        Tokenizer = tokenizer;
        TextEncoder = textEncoder;
    }

    /// <summary>The tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; }

    /// <summary>The text encoder.</summary>
    public ClipTextModel TextEncoder { get; }

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
    public override TextToImageResult Generate(TextToImageRequest request, Tensor? initialLatents = null, Action<int, Tensor>? onStep = null)
    {
        CheckRequest(request);
        if (request.NegativePrompts is { } negatives && negatives.Count != request.Prompts.Count)
            throw new ArgumentException($"{request.Prompts.Count} prompts but {negatives.Count} negative prompts: give one per prompt", nameof(request));

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool guided = request.GuidanceScale > 1.0;
        var cond = EncodePrompts(request.Prompts, request.ClipSkip);
        var embeddings = guided
            ? torch.cat([EncodePrompts(request.NegativePrompts ?? Enumerable.Repeat(request.NegativePrompt ?? "", request.Prompts.Count).ToList(), request.ClipSkip), cond])
            : cond;

        return DenoiseAndDecode(request, guided, (input, t) => Unet.call(input, t, embeddings), initialLatents, onStep);
    }

    /// <inheritdoc />
    protected override void DisposeTextEncoders() => TextEncoder.Dispose();
}
