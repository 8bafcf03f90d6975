namespace SdPipeline.Benchmarks;

/// <summary>The operations <see cref="FlopCounter"/> counts; everything else (norms, activations, adds) counts as 0, as in PyTorch's counter.</summary>
public enum FlopOp
{
    /// <summary>A non-transposed convolution: 2·N·C_out·(C_in/groups)·prod(kernel)·prod(output spatial).</summary>
    Convolution,

    /// <summary>A linear layer: 2·tokens·in·out (the bias add is not counted).</summary>
    Linear,

    /// <summary>The two batched matmuls of attention: 2·2·B·heads·L_q·L_k·head_dim.</summary>
    Attention,
}
