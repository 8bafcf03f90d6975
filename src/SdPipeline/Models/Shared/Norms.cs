using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>Normalisation layers initialised as PyTorch initialises them.</summary>
public static class Norms
{
    /// <summary>
    /// An affine GroupNorm with weight 1 and bias 0. TorchSharp 0.107's own GroupNorm leaves its affine parameters
    /// uninitialised (whatever the allocator returns, NaN included), unlike PyTorch's <c>reset_parameters</c>; a model
    /// built for training from scratch, or any test with fresh weights, needs them set.
    /// </summary>
    public static GroupNorm GroupNorm(long numGroups, long numChannels, double eps, Device? device = null)
    {
        var norm = nn.GroupNorm(numGroups, numChannels, eps, affine: true, device: device);
        using var _ = torch.no_grad();
        norm.weight!.fill_(1.0);
        norm.bias!.zero_();
        return norm;
    }
}
