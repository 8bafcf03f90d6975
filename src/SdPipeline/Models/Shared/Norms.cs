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

    /// <summary>
    /// <paramref name="norm"/> applied to <paramref name="input"/>, then SiLU when <paramref name="silu"/>. In inference
    /// (<paramref name="inference"/>: the caller is in eval mode with autograd off) a float32 GroupNorm on an AVX-512 CPU
    /// runs as <see cref="GroupNormKernel"/>, SiLU in the same pass, unless <see cref="InferenceKernels"/> are off;
    /// otherwise the layer is called as it is (a training wrapper may have replaced it).
    /// </summary>
    public static Tensor Apply(nn.Module<Tensor, Tensor> norm, Tensor input, bool inference, bool silu = false)
    {
        if (!inference || norm is not GroupNorm groupNorm) return Layer(norm, input, silu);
        var path = InferenceKernels.Enabled && GroupNormKernel.Applies(input, groupNorm) ? GroupNormPath.Kernel : GroupNormPath.Layer;
        if (KernelChoices.Watched) KernelChoices.Report(new GroupNormCall(groupNorm, input.shape, KernelTensors.ChannelsLast(input), silu, path));
        return Run(path, groupNorm, input, silu);
    }

    /// <summary>
    /// Every path that can compute <paramref name="norm"/> on <paramref name="input"/> here: the layer, and the kernel
    /// where it applies.
    /// </summary>
    public static IReadOnlyList<GroupNormPath> Candidates(Tensor input, GroupNorm norm) =>
        GroupNormKernel.Applies(input, norm) ? [GroupNormPath.Layer, GroupNormPath.Kernel] : [GroupNormPath.Layer];

    /// <summary><paramref name="norm"/> (then SiLU when <paramref name="silu"/>) applied to <paramref name="input"/> by <paramref name="path"/>.</summary>
    public static Tensor Run(GroupNormPath path, GroupNorm norm, Tensor input, bool silu) =>
        path == GroupNormPath.Kernel ? GroupNormKernel.Normalize(input, norm, silu) : Layer(norm, input, silu);

    private static Tensor Layer(nn.Module<Tensor, Tensor> norm, Tensor input, bool silu)
    {
        // libtorch chooses its channels-last GroupNorm by the strides' order alone, and that one takes the variance from
        // sums of squares, which cancels on flat regions (GroupNormKernel); the plain layout's two-pass form does not.
        var output = input.is_contiguous() ? norm.call(input) : input.contiguous().Into(norm.call);
        return silu ? output.Into(h => nn.functional.silu(h)) : output;
    }
}
