using static TorchSharp.torch;

namespace SdPipeline.Latents;

/// <summary>One training batch from the cache: rows of a single bucket, as CPU tensors.</summary>
/// <param name="Rows">The rows.</param>
/// <param name="Mean">Posterior mean [B, C, h, w] (unscaled).</param>
/// <param name="Std">Posterior standard deviation [B, C, h, w].</param>
/// <param name="InputIds">Token ids [B, 77].</param>
/// <param name="TextEmbeddings">Frozen text-encoder hidden states [B, 77, D].</param>
public sealed record LatentBatch(IReadOnlyList<LatentRow> Rows, Tensor Mean, Tensor Std, Tensor InputIds, Tensor TextEmbeddings) : IDisposable
{
    /// <summary>The SDXL columns of an SDXL cache, else null.</summary>
    public SdxlLatentColumns? Sdxl { get; init; }

    /// <inheritdoc />
    public void Dispose()
    {
        Mean.Dispose();
        Std.Dispose();
        InputIds.Dispose();
        TextEmbeddings.Dispose();
        Sdxl?.Dispose();
    }
}
