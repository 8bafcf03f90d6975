namespace SdPipeline.Benchmarks;

/// <summary>FLOPs of one or more forward passes, by operation, as PyTorch's <c>torch.utils.flop_counter</c> counts them (2 per multiply-add).</summary>
/// <param name="ConvolutionForward">Convolutions, forward.</param>
/// <param name="LinearForward">Linear layers, forward.</param>
/// <param name="AttentionForward">Attention score and value matmuls, forward.</param>
/// <param name="ConvolutionBackward">Convolutions, backward (grad-input where the input needs it, grad-weight where the weight does).</param>
/// <param name="LinearBackward">Linear layers, backward (same rule).</param>
/// <param name="AttentionBackward">Attention, backward: 2× forward, as on the plain (bmm + softmax) path.</param>
public sealed record FlopCount(
    double ConvolutionForward,
    double LinearForward,
    double AttentionForward,
    double ConvolutionBackward,
    double LinearBackward,
    double AttentionBackward)
{
    /// <summary>No FLOPs.</summary>
    public static FlopCount Zero { get; } = new(0, 0, 0, 0, 0, 0);

    /// <summary>Forward FLOPs.</summary>
    public double Forward => ConvolutionForward + LinearForward + AttentionForward;

    /// <summary>Backward FLOPs.</summary>
    public double Backward => ConvolutionBackward + LinearBackward + AttentionBackward;

    /// <summary>Forward plus backward: one training step's model FLOPs (the optimiser's elementwise work is not counted).</summary>
    public double ForwardBackward => Forward + Backward;

    /// <summary>Sums the records of a counter.</summary>
    public static FlopCount Of(IEnumerable<FlopRecord> records)
    {
        double[] forward = new double[3], backward = new double[3];
        foreach (var record in records)
        {
            forward[(int)record.Op] += record.Forward;
            backward[(int)record.Op] += record.Backward;
        }
        return new FlopCount(forward[0], forward[1], forward[2], backward[0], backward[1], backward[2]);
    }
}
