using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>How an inference convolution is computed (<see cref="Convolutions"/>).</summary>
public enum ConvolutionPath
{
    /// <summary>The layer as it is: oneDNN where libtorch enables it, else libtorch's own im2col and GEMM.</summary>
    Layer,
    /// <summary>libtorch's own im2col and GEMM, with oneDNN off for the call.</summary>
    LibtorchsOwn,
    /// <summary><see cref="WinogradConvolution"/>, on a channels-last input.</summary>
    Winograd,
    /// <summary><see cref="PlainWinogradConvolution"/>, on a plain-layout input.</summary>
    PlainWinograd,
    /// <summary><see cref="WinogradConvolution.ConvolvePlain(Tensor, Conv2d)"/>: a plain-layout input copied channels-last and back.</summary>
    ChannelsLastWinograd,
}

/// <summary>How an inference GroupNorm is computed (<see cref="Norms"/>).</summary>
public enum GroupNormPath
{
    /// <summary>The layer as it is (libtorch's <c>group_norm</c> on the plain layout), then SiLU if asked.</summary>
    Layer,
    /// <summary><see cref="GroupNormKernel"/>, SiLU in the same pass.</summary>
    Kernel,
}

/// <summary>How an inference attention is computed (<see cref="Attention"/>).</summary>
public enum AttentionPath
{
    /// <summary>libtorch's <c>scaled_dot_product_attention</c> (its flash kernel on the CPU).</summary>
    ScaledDotProduct,
    /// <summary><see cref="AttentionKernel"/>.</summary>
    Kernel,
}

/// <summary>How an inference linear layer is computed (<see cref="Linears"/>).</summary>
public enum LinearPath
{
    /// <summary>The layer as it is (libtorch's <c>linear</c>: MKL's GEMM).</summary>
    Layer,
    /// <summary><see cref="LinearKernel"/>.</summary>
    Kernel,
}

/// <summary>One choice of kernel a model made in inference: the layer, what it was given and the path taken.</summary>
/// <param name="Layer">The layer (a <c>Conv2d</c>, <c>GroupNorm</c> or <see cref="Attention"/>).</param>
/// <param name="InputShape">The input's shape; for attention the query projection's [B, N, H·D].</param>
/// <param name="ChannelsLast">Whether the input was stored channels-last.</param>
public abstract record KernelCall(nn.Module Layer, long[] InputShape, bool ChannelsLast);

/// <summary>A 3×3 convolution's choice.</summary>
public sealed record ConvolutionCall(Conv2d Convolution, long[] InputShape, bool ChannelsLast, ConvolutionPath Path)
    : KernelCall(Convolution, InputShape, ChannelsLast);

/// <summary>A GroupNorm's choice; <paramref name="Silu"/>: SiLU follows in the same call.</summary>
public sealed record GroupNormCall(GroupNorm Norm, long[] InputShape, bool ChannelsLast, bool Silu, GroupNormPath Path)
    : KernelCall(Norm, InputShape, ChannelsLast);

/// <summary>An attention's choice; <paramref name="KeyShape"/> is the key projection's [B, M, H·D].</summary>
public sealed record AttentionCall(Attention Attention, long[] InputShape, long[] KeyShape, AttentionPath Path)
    : KernelCall(Attention, InputShape, false);

/// <summary>A linear layer's choice.</summary>
public sealed record LinearCall(Linear Linear, long[] InputShape, LinearPath Path) : KernelCall(Linear, InputShape, false);

/// <summary>
/// Lets a caller watch the kernel choices the models make in inference on its thread (<c>sdpipe bench kernels</c> times
/// each choice against the paths not taken, on the CPU at hand). Models report here and do nothing else with it.
/// </summary>
public static class KernelChoices
{
    [ThreadStatic] private static Action<KernelCall>? t_observer;

    /// <summary>Whether a caller on this thread is watching (the models skip building a report otherwise).</summary>
    internal static bool Watched => t_observer is not null;

    /// <summary>Sends every choice made on this thread to <paramref name="observer"/> until the result is disposed.</summary>
    public static IDisposable Watch(Action<KernelCall> observer)
    {
        var previous = t_observer;
        t_observer = observer;
        return new Restore(previous);
    }

    internal static void Report(KernelCall call) => t_observer?.Invoke(call);

    private sealed class Restore(Action<KernelCall>? previous) : IDisposable
    {
        public void Dispose() => t_observer = previous;
    }
}
