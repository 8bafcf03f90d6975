using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Latents;

/// <summary>An SDXL cache's extra columns of a batch, as CPU tensors (see <see cref="LatentTensorNames"/>).</summary>
/// <param name="InputIds2">The second tokenizer's ids [B, 77].</param>
/// <param name="PooledTextEmbeddings">The pooled, projected embedding [B, projection_dim].</param>
/// <param name="OriginalSize">(height, width) before the resize, int64 [B, 2].</param>
/// <param name="CropTopLeft">(top, left) of the crop, int64 [B, 2].</param>
public sealed record SdxlLatentColumns(Tensor InputIds2, Tensor PooledTextEmbeddings, Tensor OriginalSize, Tensor CropTopLeft) : IDisposable
{
    /// <summary>
    /// The UNet's <c>time_ids</c> [B, 6] float32 for a batch trained at <paramref name="targetHeight"/> × <paramref name="targetWidth"/>
    /// pixels: <c>compute_time_ids</c> of diffusers' SDXL script, <c>original_size + crop_top_left + target_size</c>.
    /// </summary>
    public Tensor TimeIds(int targetHeight, int targetWidth)
    {
        long batch = OriginalSize.shape[0];
        var target = torch.tensor(new long[] { targetHeight, targetWidth }).unsqueeze(0).expand(batch, 2);
        return torch.cat([OriginalSize, CropTopLeft, target], dim: 1).to(ScalarType.Float32);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        InputIds2.Dispose();
        PooledTextEmbeddings.Dispose();
        OriginalSize.Dispose();
        CropTopLeft.Dispose();
    }
}
