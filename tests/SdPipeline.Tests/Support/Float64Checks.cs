using static TorchSharp.torch;

namespace SdPipeline.Tests.Support;

/// <summary>How the kernels' tests compare a float32 result with its float64 reference.</summary>
internal static class Float64Checks
{
    /// <summary>The largest difference, relative to <paramref name="expected"/>'s largest magnitude.</summary>
    public static double RelativeError(Tensor actual, Tensor expected) =>
        (actual.to(ScalarType.Float64) - expected).abs().max().item<double>() / expected.abs().max().item<double>();

    /// <summary>A float64 copy of <paramref name="tensor"/> that collects its own gradient.</summary>
    public static Tensor Float64Leaf(Tensor tensor) => tensor.detach().to(ScalarType.Float64).requires_grad_();
}
