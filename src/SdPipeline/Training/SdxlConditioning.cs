using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// The conditioning of diffusers' <c>train_text_to_image_sdxl.py</c> step (and <c>train_text_to_image_lora_sdxl.py</c>'s) from
/// an SDXL latent cache: <c>encoder_hidden_states</c> = the cached prompt embeddings, <c>added_cond_kwargs</c> =
/// <c>{"text_embeds": pooled, "time_ids": compute_time_ids(original_size, crop_top_left)}</c> with the batch's bucket as the
/// target size. When LoRA trains the text encoders, the captions' token ids go through both encoders again each step
/// (with the adapters, and gradients), as the LoRA script's <c>encode_prompt</c> inside the loop does. Caption dropout and
/// tag shuffling (<see cref="SdxlCaptionAugmentation"/>) change the text of training steps, never of held-out evaluations.
/// </summary>
/// <param name="encoders">Both text encoders when LoRA trains them, else null (the cached embeddings are used).</param>
public sealed class SdxlConditioning(SdxlTextEncoders? encoders)
{
    /// <summary>The text encoders the step runs, or null when it reads cached embeddings.</summary>
    public SdxlTextEncoders? Encoders { get; } = encoders;

    /// <summary>Caption dropout and tag shuffling when the settings ask for them, else null.</summary>
    public SdxlCaptionAugmentation? CaptionAugmentation { get; init; }

    /// <summary>
    /// Whether the run needs the second text encoder loaded: LoRA trains it, or captions are encoded during training (tag
    /// shuffling; caption dropout's empty prompt), or validation images are sampled.
    /// </summary>
    public static bool NeedsTextEncoder2(TrainSection settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.TrainTextEncoder || settings.CaptionDropout > 0 || settings.ShuffleTags || settings.ValidationPrompts.Length > 0;
    }

    /// <summary>
    /// The settings an SDXL run cannot take yet, as errors that name the key; empty when the run can start.
    /// </summary>
    public static IReadOnlyList<string> Unsupported(TrainSection settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var problems = new List<string>();
        if (settings.TrainTextEncoder && settings.Method != TrainingMethods.Lora)
            problems.Add("train.train_text_encoder=true with train.method=full: a full SDXL fine-tune trains the UNet only (as diffusers' " +
                "train_text_to_image_sdxl.py); train the text encoders with train.method=lora (adapters on both), or set train.train_text_encoder=false");
        return problems;
    }

    /// <summary>
    /// The UNet's conditioning of <paramref name="batch"/> on <paramref name="device"/>, after caption augmentation when
    /// <paramref name="generator"/> is given (training steps, not held-out evaluations).
    /// </summary>
    /// <exception cref="InvalidOperationException">The batch is not from an SDXL cache.</exception>
    public UnetConditioning Condition(LatentBatch batch, Device device, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var columns = batch.Sdxl ?? throw new InvalidOperationException("an SDXL UNet needs an SDXL latent cache (pooled embeddings and time ids); rebuild the latents stage");
        var bucket = batch.Rows[0].Bucket.Split('x');
        var timeIds = columns.TimeIds(int.Parse(bucket[1], System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(bucket[0], System.Globalization.CultureInfo.InvariantCulture)).to(device);
        var text = generator is not null && CaptionAugmentation is not null
            ? CaptionAugmentation.Apply(batch, generator)
            : new SdxlCaptions(batch.TextEmbeddings, columns.PooledTextEmbeddings, batch.InputIds, columns.InputIds2);
        if (Encoders is null)
            return new UnetConditioning(text.PromptEmbeds.to(device).to(ScalarType.Float32),
                new AddedConditions(text.PooledPromptEmbeds.to(device).to(ScalarType.Float32), timeIds));
        var (promptEmbeds, pooled) = Encoders.Encode(text.InputIds.to(device), text.InputIds2.to(device));
        return new UnetConditioning(promptEmbeds, new AddedConditions(pooled, timeIds));
    }
}
