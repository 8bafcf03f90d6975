using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>How the models call their linear layers: which kernel computes each, in inference.</summary>
public static class Linears
{
    /// <summary>
    /// <paramref name="layer"/> applied to <paramref name="input"/>. In inference (<paramref name="inference"/>: the caller
    /// is in eval mode with autograd off) a float32 linear layer over at least <see cref="KernelRows"/> rows runs as
    /// <see cref="LinearKernel"/> on AMD's CPUs (<see cref="PrefersKernel"/>), unless a hook watches the layer (a LoRA
    /// adapter, a FLOP counter); otherwise the layer is called as it is.
    /// </summary>
    public static Tensor Apply(nn.Module<Tensor, Tensor> layer, Tensor input, bool inference)
    {
        if (!inference || layer is not Linear linear) return layer.call(input);
        var path = Choose(input, linear);
        if (KernelChoices.Watched) KernelChoices.Report(new LinearCall(linear, input.shape, path));
        return Run(path, linear, input);
    }

    /// <summary>The path <see cref="Apply"/> takes in inference: the layer as it is when <see cref="InferenceKernels"/> are off.</summary>
    public static LinearPath Choose(Tensor input, Linear linear) =>
        InferenceKernels.Enabled && PrefersKernel(input, linear) && !Convolutions.HasHooks(linear) ? LinearPath.Kernel : LinearPath.Layer;

    /// <summary>Every path that can compute <paramref name="linear"/> on <paramref name="input"/> here: the layer, and the kernel where it applies.</summary>
    public static IReadOnlyList<LinearPath> Candidates(Tensor input, Linear linear) =>
        LinearKernel.Applies(input, linear) ? [LinearPath.Layer, LinearPath.Kernel] : [LinearPath.Layer];

    /// <summary><paramref name="linear"/> applied to <paramref name="input"/> by <paramref name="path"/> (one of <see cref="Candidates"/>).</summary>
    public static Tensor Run(LinearPath path, Linear linear, Tensor input) =>
        path == LinearPath.Kernel ? LinearKernel.Apply(input, linear) : linear.call(input);

    /// <summary>
    /// Whether <see cref="LinearKernel"/> computes <paramref name="linear"/> on <paramref name="input"/>: where it applies,
    /// under AMD's rules (<see cref="InferenceKernels.AmdRules"/> unless <paramref name="amd"/> says), from <see cref="KernelRows"/> rows.
    /// </summary>
    internal static bool PrefersKernel(Tensor input, Linear linear, bool? amd = null) =>
        LinearKernel.Applies(input, linear) && input.numel() / input.shape[^1] >= KernelRows(amd ?? InferenceKernels.AmdRules);

    /// <summary>The fewest rows (tokens) at which <see cref="PrefersKernel"/> holds on AMD's CPUs (<paramref name="amd"/>); none elsewhere.</summary>
    /// <remarks>
    /// Measured on an AMD EPYC Zen 4 (family 25, model 17; `sdpipe bench kernels --models unet`, batch 2): at 512 px the
    /// kernel took 0.67–0.94× libtorch's time at every linear layer of SD 1.5's UNet, from the mid block's 128 rows
    /// (0.67× for its 1280 → 10240 GEGLU projection) and the text's 154 keys and values (0.79–0.84×) to the 64×64
    /// level's 8192 (0.74–0.84×); at 256 px the mid block's 32 rows took 0.64–0.88×. Single cases swing by ±60% between
    /// runs (the text's keys at 8×8: 0.84× in one, 1.64× in the next); the sum does not. Fewer rows are not measured.
    /// Intel's CPUs, whose MKL runs its own AVX-512 path, keep libtorch's; `sdpipe bench kernels` times the kernel there.
    /// </remarks>
    internal static long KernelRows(bool amd) => amd ? 32 : long.MaxValue;
}
