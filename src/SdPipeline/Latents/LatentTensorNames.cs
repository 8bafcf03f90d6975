namespace SdPipeline.Latents;

/// <summary>
/// The tensors of a latent shard, one row per cached (image, augmentation). Every cache holds the first four; an SDXL
/// cache (a model with <c>text_encoder_2/</c>) also holds the second tokenizer's ids, the pooled embedding and the
/// micro-conditioning of <c>train_text_to_image_sdxl.py</c>'s <c>compute_time_ids</c>.
/// </summary>
public static class LatentTensorNames
{
    /// <summary>VAE posterior mean [n, C, h, w], unscaled.</summary>
    public const string Mean = "mean";

    /// <summary>VAE posterior standard deviation [n, C, h, w].</summary>
    public const string Std = "std";

    /// <summary>The (first) tokenizer's ids [n, 77].</summary>
    public const string InputIds = "input_ids";

    /// <summary>
    /// The frozen text conditioning [n, 77, D]: SD's text encoder at <c>model.clip_skip</c>; for SDXL both encoders'
    /// penultimate hidden states concatenated, the first's channels first (diffusers' <c>prompt_embeds</c>, 2048 wide).
    /// </summary>
    public const string TextEmbeddings = "text_embeddings";

    /// <summary>SDXL: the second tokenizer's ids [n, 77] (padded with <c>!</c>, id 0).</summary>
    public const string InputIds2 = "input_ids_2";

    /// <summary>SDXL: the second encoder's projected pooled embedding [n, projection_dim] (the UNet's <c>text_embeds</c>).</summary>
    public const string PooledTextEmbeddings = "pooled_text_embeddings";

    /// <summary>SDXL: the image's (height, width) before any resize, int64 [n, 2].</summary>
    public const string OriginalSize = "original_size";

    /// <summary>
    /// SDXL: the crop's (top, left) in the resized image as diffusers' script crops it — after the flip, so a flipped row's
    /// left is measured from the flipped image's left edge — int64 [n, 2].
    /// </summary>
    public const string CropTopLeft = "crop_top_left";

    /// <summary>The tensors every cache holds.</summary>
    public static IReadOnlyList<string> Common { get; } = [Mean, Std, InputIds, TextEmbeddings];

    /// <summary>The tensors only an SDXL cache holds.</summary>
    public static IReadOnlyList<string> SdxlOnly { get; } = [InputIds2, PooledTextEmbeddings, OriginalSize, CropTopLeft];
}
