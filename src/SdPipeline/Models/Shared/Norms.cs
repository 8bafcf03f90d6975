using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>Normalisation layers initialised as PyTorch initialises them.</summary>
public static class Norms
{
    /// <summary>
    /// GroupNorm with weight 1 and bias 0, in float32 under autocast (<see cref="AutocastGroupNorm"/>).
    /// TorchSharp 0.107's own GroupNorm leaves its affine parameters uninitialised (whatever the allocator returns,
    /// NaN included), unlike PyTorch's <c>reset_parameters</c>; a model built for training from scratch, or any test
    /// with fresh weights, needs them set.
    /// </summary>
    public static AutocastGroupNorm GroupNorm(long numGroups, long numChannels, double eps, Device? device = null) =>
        new(numGroups, numChannels, eps, device);
}
