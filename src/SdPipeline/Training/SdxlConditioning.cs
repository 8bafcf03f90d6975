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
/// (with the adapters, and gradients), as the LoRA script's <c>encode_prompt</c> inside the loop does.
/// </summary>
/// <param name="encoders">Both text encoders when LoRA trains them, else null (the cached embeddings are used).</param>
public sealed class SdxlConditioning(SdxlTextEncoders? encoders)
{
    /// <summary>The text encoders the step runs, or null when it reads cached embeddings.</summary>
    public SdxlTextEncoders? Encoders { get; } = encoders;

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
        if (settings.CaptionDropout > 0)
            problems.Add($"train.caption_dropout = {settings.CaptionDropout}: caption dropout is not implemented for SDXL yet (both encoders' empty-prompt " +
                "embeddings and pooled embedding); set train.caption_dropout=0");
        if (settings.ShuffleTags)
            problems.Add("train.shuffle_tags=true: tag shuffling is not implemented for SDXL yet (it re-encodes captions with both encoders); set train.shuffle_tags=false");
        if (settings.ValidationPrompts.Length > 0)
            problems.Add("train.validation_prompts: validation images during training are not implemented for SDXL yet (they sample with the SD pipeline); " +
                "set train.validation_prompts=[] and look at the sample stage's images");
        return problems;
    }

    /// <summary>The UNet's conditioning of <paramref name="batch"/> on <paramref name="device"/>.</summary>
    /// <exception cref="InvalidOperationException">The batch is not from an SDXL cache.</exception>
    public UnetConditioning Condition(LatentBatch batch, Device device)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var columns = batch.Sdxl ?? throw new InvalidOperationException("an SDXL UNet needs an SDXL latent cache (pooled embeddings and time ids); rebuild the latents stage");
        var bucket = batch.Rows[0].Bucket.Split('x');
        var timeIds = columns.TimeIds(int.Parse(bucket[1], System.Globalization.CultureInfo.InvariantCulture),
            int.Parse(bucket[0], System.Globalization.CultureInfo.InvariantCulture)).to(device);
        if (Encoders is null)
            return new UnetConditioning(batch.TextEmbeddings.to(device).to(ScalarType.Float32),
                new AddedConditions(columns.PooledTextEmbeddings.to(device).to(ScalarType.Float32), timeIds));
        var (promptEmbeds, pooled) = Encoders.Encode(batch.InputIds.to(device), columns.InputIds2.to(device));
        return new UnetConditioning(promptEmbeds, new AddedConditions(pooled, timeIds));
    }
}
