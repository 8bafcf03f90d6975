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
/// Text to image with an SDXL diffusers folder: both tokenizers and text encoders (<see cref="SdxlPromptEncoder"/>),
/// the micro-conditioning time ids, the sampler loop with classifier-free guidance, the VAE decode in float32.
/// Mirrors diffusers' <c>StableDiffusionXLPipeline.__call__</c> (no refiner, no guidance rescale); each image starts
/// from noise of its own seeded generator, as <see cref="StableDiffusionPipeline"/>.
/// </summary>
public sealed class StableDiffusionXLPipeline : DiffusionPipeline
{
    /// <summary>Assembles a pipeline from loaded components.</summary>
    /// <param name="promptEncoder">Both tokenizers and text encoders.</param>
    /// <param name="unet">An SDXL UNet (<c>addition_embed_type: "text_time"</c>).</param>
    /// <param name="vae">The autoencoder.</param>
    /// <param name="schedulerConfig">The folder's scheduler config; every sampler is built from it.</param>
    /// <param name="forceZerosForEmptyPrompt">model_index.json's <c>force_zeros_for_empty_prompt</c> (true for SDXL base).</param>
    /// <param name="device">Where the models run.</param>
    public StableDiffusionXLPipeline(SdxlPromptEncoder promptEncoder, UNet2DConditionModel unet, AutoencoderKL vae, SchedulerConfig schedulerConfig,
        bool forceZerosForEmptyPrompt, Device device) : base(unet, vae, schedulerConfig, device)
    {
        if (!unet.Config.HasTextTimeEmbedding)
            throw new ArgumentException("an SDXL pipeline needs a UNet with addition_embed_type \"text_time\"", nameof(unet));
        if (unet.Config.CrossAttentionDim != promptEncoder.EmbeddingWidth)
            throw new ArgumentException(
                $"the UNet's cross_attention_dim {unet.Config.CrossAttentionDim} is not the text encoders' combined width {promptEncoder.EmbeddingWidth}", nameof(unet));
        // The check diffusers' pipeline makes in _get_add_time_ids.
        int expected = unet.Config.AdditionTimeEmbedDim!.Value * 6 + promptEncoder.TextEncoder2.ProjectionDim;
        if (unet.Config.ProjectionClassEmbeddingsInputDim != expected)
            throw new ArgumentException(
                $"the UNet's projection_class_embeddings_input_dim {unet.Config.ProjectionClassEmbeddingsInputDim} is not addition_time_embed_dim × 6 + " +
                $"text_encoder_2's projection_dim = {expected}", nameof(unet));
        PromptEncoder = promptEncoder;
        ForceZerosForEmptyPrompt = forceZerosForEmptyPrompt;
    }

    /// <summary>Both tokenizers and text encoders.</summary>
    public SdxlPromptEncoder PromptEncoder { get; }

    /// <summary>An absent negative prompt gives zero embeddings instead of the encoded empty prompt.</summary>
    public bool ForceZerosForEmptyPrompt { get; }

    /// <summary>Whether <paramref name="folder"/> is an SDXL folder (it has <c>text_encoder_2/</c>).</summary>
    public static bool IsSdxlFolder(DiffusersFolder folder) => BaseModel.SdxlStageSupport.IsSdxlFolder(folder);

    /// <summary>Loads every component of an SDXL diffusers folder (weights strictly) onto <paramref name="device"/>, in eval mode.</summary>
    /// <param name="folder">The diffusers folder.</param>
    /// <param name="device">Where the models run.</param>
    /// <param name="variant">Precision variant of the weight files, or null.</param>
    /// <param name="cleaning">Whose CLIP text clean-up both tokenizers reproduce (default: transformers', as diffusers).</param>
    public static StableDiffusionXLPipeline FromFolder(DiffusersFolder folder, Device device, string? variant = null,
        ClipTextCleaning cleaning = ClipTextCleaning.Transformers)
    {
        var tokenizer = ClipTokenizer.FromFolder(folder.Component("tokenizer"), cleaning);
        var tokenizer2 = ClipTokenizer.FromFolder(folder.Component("tokenizer_2"), cleaning);
        var textEncoder = ClipTextModel.FromPretrained(folder, variant: variant);
        var textEncoder2 = ClipTextModelWithProjection.FromPretrained(folder, variant: variant);
        var unet = UNet2DConditionModel.FromFolder(folder, variant);
        var vae = AutoencoderKL.FromFolder(folder, variant);
        var scheduler = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        foreach (nn.Module module in new nn.Module[] { textEncoder, textEncoder2, unet, vae })
        {
            module.to(device);
            module.eval();
        }
        return new StableDiffusionXLPipeline(new SdxlPromptEncoder(tokenizer, tokenizer2, textEncoder, textEncoder2), unet, vae, scheduler,
            ReadForceZerosForEmptyPrompt(folder), device);
    }

    /// <summary>model_index.json's <c>force_zeros_for_empty_prompt</c>; diffusers' default is true.</summary>
    public static bool ReadForceZerosForEmptyPrompt(DiffusersFolder folder)
    {
        var value = folder.ModelIndex()["force_zeros_for_empty_prompt"];
        return value is null || value.Type == Newtonsoft.Json.Linq.JTokenType.Null || value.ToObject<bool>();
    }

    /// <summary>The embeddings of <paramref name="prompts"/>.</summary>
    public SdxlPromptEmbeddings EncodePrompts(IReadOnlyList<string> prompts)
    {
        using var _ = torch.no_grad();
        return PromptEncoder.Encode(prompts, Device);
    }

    /// <summary>
    /// The unconditional embeddings: <paramref name="negativePrompts"/> null with <see cref="ForceZerosForEmptyPrompt"/> gives
    /// zeros shaped like <paramref name="cond"/>; otherwise the negative prompts (null = one <c>""</c> per prompt) are encoded
    /// like prompts, an explicit <c>""</c> included.
    /// </summary>
    public SdxlPromptEmbeddings EncodeNegativePrompts(IReadOnlyList<string>? negativePrompts, SdxlPromptEmbeddings cond)
    {
        if (negativePrompts is null && ForceZerosForEmptyPrompt) return cond.ZerosLike();
        long batch = cond.PromptEmbeds.shape[0];
        var negatives = negativePrompts ?? Enumerable.Repeat("", (int)batch).ToList();
        if (negatives.Count != batch)
            throw new ArgumentException($"{negatives.Count} negative prompts for {batch} prompts", nameof(negativePrompts));
        return EncodePrompts(negatives);
    }

    /// <summary>
    /// Generates one image per prompt and seed. The request's negative prompt null (and no <c>NegativePrompts</c> list)
    /// means none (zero embeddings when the model forces them); <c>""</c> is encoded, and so is every entry of a
    /// <c>NegativePrompts</c> list.
    /// </summary>
    /// <param name="request">What to generate; <c>ClipSkip</c> must be 0 (SDXL always reads the penultimate layers).</param>
    /// <param name="initialLatents">Starting latents [B, C, h, w] instead of seeded noise (parity tests); multiplied by the sampler's initial sigma.</param>
    /// <param name="onStep">Called after each sampler step with (step index, latents).</param>
    public override TextToImageResult Generate(TextToImageRequest request, Tensor? initialLatents = null, Action<int, Tensor>? onStep = null)
    {
        if (request.ClipSkip != 0)
            throw new ArgumentException("clip skip is not used with SDXL, which conditions on both encoders' penultimate layers; set it to 0", nameof(request));
        if (request.NegativePrompts is { } negatives && negatives.Count != request.Prompts.Count)
            throw new ArgumentException($"{request.Prompts.Count} prompts but {negatives.Count} negative prompts: give one per prompt", nameof(request));
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var cond = EncodePrompts(request.Prompts);
        // A list of negative prompts is given, so each is encoded ("" included), as diffusers does with a list negative_prompt.
        SdxlPromptEmbeddings? uncond = request.GuidanceScale > 1.0
            ? EncodeNegativePrompts(request.NegativePrompts
                ?? (request.NegativePrompt is null ? null : Enumerable.Repeat(request.NegativePrompt, request.Prompts.Count).ToList()), cond)
            : null;
        var result = GenerateFromEmbeddings(request, cond, uncond, initialLatents, onStep);
        return result with { Latents = result.Latents.MoveToOuterDisposeScope(), Decoded = result.Decoded.MoveToOuterDisposeScope() };
    }

    /// <summary>
    /// The sampler loop and decode from given embeddings (diffusers' <c>prompt_embeds</c> / <c>negative_prompt_embeds</c>
    /// arguments). <paramref name="uncond"/> null runs without guidance.
    /// </summary>
    public TextToImageResult GenerateFromEmbeddings(TextToImageRequest request, SdxlPromptEmbeddings cond, SdxlPromptEmbeddings? uncond,
        Tensor? initialLatents = null, Action<int, Tensor>? onStep = null)
    {
        CheckRequest(request);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        long batch = cond.PromptEmbeds.shape[0];
        bool guided = uncond is not null;
        var both = guided ? SdxlPromptEmbeddings.Concat(uncond!, cond) : cond;
        // The same ids for the unconditional and conditional rows: the pipeline's defaults for the requested size.
        var timeIds = SdxlTimeIds.Stack(Enumerable.Repeat(SdxlTimeIds.ForGeneration(request.Height, request.Width), (int)(guided ? 2 * batch : batch)).ToList())
            .to(Device);
        var added = new AddedConditions(both.PooledPromptEmbeds, timeIds);

        return DenoiseAndDecode(request, guided, (input, t) => Unet.forward(input, t, both.PromptEmbeds, added), initialLatents, onStep);
    }

    /// <summary>
    /// diffusers' SDXL pipeline (unlike SD's) undoes a per-channel normalisation when the VAE config publishes both
    /// <c>latents_mean</c> and <c>latents_std</c>: latents · std / scaling_factor + mean.
    /// </summary>
    protected override Tensor Unscale(Tensor latents)
    {
        var config = Vae.Config;
        if (config.LatentsMean is not { } mean || config.LatentsStd is not { } std)
            return base.Unscale(latents);
        long channels = latents.shape[1];
        if (mean.Count != channels || std.Count != channels)
            throw new ArgumentException($"the VAE config's latents_mean ({mean.Count} values) and latents_std ({std.Count} values) must have one value per latent channel ({channels})");
        using var scope = NewDisposeScope();
        Tensor PerChannel(IReadOnlyList<double> values) => tensor(values.Select(v => (float)v).ToArray(), [1, channels, 1, 1]).to(latents.dtype).to(latents.device);
        return (latents * PerChannel(std) / config.ScalingFactor + PerChannel(mean)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    protected override void DisposeTextEncoders()
    {
        PromptEncoder.TextEncoder.Dispose();
        PromptEncoder.TextEncoder2.Dispose();
    }
}
