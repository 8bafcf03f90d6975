using SdPipeline.Models.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// SDXL's <c>text_time</c> augmentation of the timestep embedding: each of the six time ids through the same
/// sinusoid as the timestep (<c>add_time_proj</c>), concatenated after the pooled text embedding, through
/// <c>add_embedding</c>. The UNet adds the result to its timestep embedding.
/// </summary>
/// <remarks>Mirrors diffusers' <c>UNet2DConditionModel.get_aug_embed</c> for <c>addition_embed_type == "text_time"</c>.</remarks>
internal static class TextTimeEmbedding
{
    /// <summary>The number of micro-conditioning ids per image.</summary>
    public const int TimeIdCount = 6;

    /// <summary>
    /// <c>add_embedding(cat([text_embeds, add_time_proj(time_ids.flatten()).reshape(B, -1)], -1))</c> in <paramref name="dtype"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The inputs' shapes do not fit the batch or the embedding.</exception>
    public static Tensor Compute(Timesteps addTimeProj, TimestepEmbedding addEmbedding, int addTimeEmbedDim, int inputDim,
        AddedConditions conditions, long batch, ScalarType dtype, Device device)
    {
        var textEmbeds = conditions.TextEmbeds;
        var timeIds = conditions.TimeIds;
        if (timeIds.dim() != 2 || timeIds.shape[1] != TimeIdCount || timeIds.shape[0] != batch)
            throw new ArgumentException($"time_ids must be [{batch}, {TimeIdCount}], got [{string.Join(", ", timeIds.shape)}]", nameof(conditions));
        long textWidth = inputDim - TimeIdCount * (long)addTimeEmbedDim;
        if (textEmbeds.dim() != 2 || textEmbeds.shape[0] != batch || textEmbeds.shape[1] != textWidth)
            throw new ArgumentException(
                $"text_embeds must be [{batch}, {textWidth}] (projection_class_embeddings_input_dim {inputDim} − 6 × addition_time_embed_dim {addTimeEmbedDim}), " +
                $"got [{string.Join(", ", textEmbeds.shape)}]", nameof(conditions));

        using var scope = NewDisposeScope();
        // diffusers embeds the ids as floats (an int tensor would be converted by the sinusoid anyway).
        var timeEmbeds = addTimeProj.call(timeIds.to(device).flatten().to(ScalarType.Float32)).reshape(batch, -1);
        var input = torch.cat([textEmbeds.to(device), timeEmbeds], dim: -1).to(dtype);
        return addEmbedding.call(input).MoveToOuterDisposeScope();
    }
}
