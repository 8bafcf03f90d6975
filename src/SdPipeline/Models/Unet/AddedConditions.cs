using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// SDXL's extra UNet inputs (diffusers' <c>added_cond_kwargs</c>) for <c>addition_embed_type: "text_time"</c>.
/// </summary>
/// <param name="TextEmbeds">The pooled, projected embedding of the second text encoder [B, projection_dim].</param>
/// <param name="TimeIds">
/// The micro-conditioning [B, 6]: original (height, width), crop (top, left), target (height, width), in pixels.
/// </param>
public sealed record AddedConditions(Tensor TextEmbeds, Tensor TimeIds);
