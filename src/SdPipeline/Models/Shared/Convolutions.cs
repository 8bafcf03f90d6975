using System.Collections;
using System.Reflection;
using System.Runtime.Intrinsics.X86;
using System.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>How the models call their 3×3 convolutions: which kernel computes each, in inference.</summary>
public static class Convolutions
{
    /// <summary>
    /// <paramref name="convolution"/> applied to <paramref name="input"/>. In inference (<paramref name="inference"/>:
    /// the caller is in eval mode with autograd off) a 3×3, stride-1 convolution of a channels-last float32 input on an
    /// AVX-512 CPU runs as <see cref="WinogradConvolution"/>, and one of a plain-layout input of at least
    /// <see cref="WinogradPositions"/> positions an image as <see cref="PlainWinogradConvolution"/> (on AMD's CPUs at
    /// 16×16 as <see cref="WinogradConvolution.ConvolvePlain(Tensor, Conv2d)"/>: <see cref="PrefersChannelsLastWinograd"/>), unless a hook watches
    /// the layer (a LoRA adapter, a FLOP counter); a wide one at a low resolution (<see cref="PrefersLibtorchsOwn"/>) runs
    /// with oneDNN off; otherwise the layer is called as it is.
    /// </summary>
    public static Tensor Apply(nn.Module<Tensor, Tensor> convolution, Tensor input, bool inference)
    {
        if (!inference || convolution is not Conv2d conv) return convolution.call(input);
        var path = Choose(input, conv);
        if (KernelChoices.Watched) KernelChoices.Report(new ConvolutionCall(conv, input.shape, KernelTensors.ChannelsLast(input), path));
        return Run(path, conv, input);
    }

    /// <summary>
    /// The path <see cref="Apply"/> takes for <paramref name="conv"/> on <paramref name="input"/> in inference: the layer
    /// as it is when <see cref="InferenceKernels"/> are off.
    /// </summary>
    public static ConvolutionPath Choose(Tensor input, Conv2d conv)
    {
        if (!InferenceKernels.Enabled) return ConvolutionPath.Layer;
        // The hooks are read (by reflection) only where a kernel would take the layer from them.
        if (WinogradConvolution.Applies(input, conv) && !HasHooks(conv)) return ConvolutionPath.Winograd;
        if (PrefersChannelsLastWinograd(input, conv) && !HasHooks(conv)) return ConvolutionPath.ChannelsLastWinograd;
        if (PrefersPlainWinograd(input, conv) && !HasHooks(conv)) return ConvolutionPath.PlainWinograd;
        return PrefersLibtorchsOwn(input, conv) ? ConvolutionPath.LibtorchsOwn : ConvolutionPath.Layer;
    }

    /// <summary>
    /// Every path that can compute <paramref name="conv"/> on <paramref name="input"/> here, whatever the rule picks:
    /// the layer, libtorch's own where oneDNN is on (else that is the layer), and each Winograd kernel that applies.
    /// </summary>
    public static IReadOnlyList<ConvolutionPath> Candidates(Tensor input, Conv2d conv)
    {
        var paths = new List<ConvolutionPath> { ConvolutionPath.Layer };
        if (OneDnn.Enabled && input.device_type == DeviceType.CPU) paths.Add(ConvolutionPath.LibtorchsOwn);
        if (WinogradConvolution.Applies(input, conv)) paths.Add(ConvolutionPath.Winograd);
        if (PlainWinogradConvolution.Applies(input, conv)) paths.Add(ConvolutionPath.PlainWinograd);
        if (WinogradConvolution.AppliesToPlain(input, conv)) paths.Add(ConvolutionPath.ChannelsLastWinograd);
        return paths;
    }

    /// <summary><paramref name="conv"/> applied to <paramref name="input"/> by <paramref name="path"/> (one of <see cref="Candidates"/>).</summary>
    public static Tensor Run(ConvolutionPath path, Conv2d conv, Tensor input) => path switch
    {
        ConvolutionPath.Winograd => WinogradConvolution.Convolve(input, conv),
        ConvolutionPath.PlainWinograd => PlainWinogradConvolution.Convolve(input, conv),
        ConvolutionPath.ChannelsLastWinograd => WinogradConvolution.ConvolvePlain(input, conv),
        ConvolutionPath.LibtorchsOwn => OneDnn.Without(() => conv.call(input)),
        _ => conv.call(input),
    };

    /// <summary>
    /// Whether libtorch's own convolution (im2col and one GEMM) computes <paramref name="conv"/> on
    /// <paramref name="input"/> faster than oneDNN: a float32 CPU input in the plain layout, a 3×3 stride-1 kernel, at
    /// least <see cref="WideChannels"/> output channels and at most <see cref="LowResolutionLimit"/> positions an image.
    /// </summary>
    /// <remarks>
    /// Measured on an Intel Xeon (family 6, model 207; docs/performance.md), SD 1.5's UNet shapes, forward only, median
    /// of seven: oneDNN's time over libtorch's own at 1280 output channels 1.06–1.12× at 16×16, 1.12–1.39× at 8×8,
    /// 1.08–2.85× at 4×4, 1.04–1.09× at 32×32; at 320 and 640 output channels oneDNN was as fast or faster (0.84–1.02×). 32×32 is
    /// left to oneDNN (or, on AVX-512, to <see cref="PlainWinogradConvolution"/>): there the columns of a 2560-channel
    /// input at batch 2 would be 189 MB, against 47 MB at 16×16.
    /// </remarks>
    internal static bool PrefersLibtorchsOwn(Tensor input, Conv2d conv) =>
        conv.weight is { } weight && weight.dim() == 4 && weight.shape[0] >= WideChannels && weight.shape[2] == 3 && weight.shape[3] == 3
        && conv.stride is [1, 1] && conv.groups == 1 && !conv.transposed
        && input.dim() == 4 && input.device_type == DeviceType.CPU && input.dtype == ScalarType.Float32 && input.is_contiguous()
        && input.shape[2] * input.shape[3] <= LowResolutionLimit(InferenceKernels.AmdRules) && OneDnn.Enabled;

    /// <summary>
    /// Whether <paramref name="conv"/> on the plain-layout <paramref name="input"/> runs as
    /// <see cref="PlainWinogradConvolution"/>: where it applies, at <see cref="WinogradPositions"/> positions an image or more.
    /// </summary>
    /// <remarks>
    /// Measured on an Intel Xeon (family 6, model 207; docs/performance.md), SD 1.5's UNet shapes at 512 px, batch 2,
    /// median of seven, interleaved: Winograd's time over oneDNN's 0.51–0.77× at 64×64 and 32×32 (320 to 1280
    /// channels), 1.15–1.36× at 16×16, where a tile group's GEMM is too small to pay for the transforms and the weight's.
    /// </remarks>
    internal static bool PrefersPlainWinograd(Tensor input, Conv2d conv) =>
        input.dim() == 4 && input.shape[2] * input.shape[3] >= WinogradPositions && PlainWinogradConvolution.Applies(input, conv);

    /// <summary>
    /// Whether <paramref name="conv"/> on the plain-layout <paramref name="input"/> runs as
    /// <see cref="WinogradConvolution.ConvolvePlain(Tensor, Conv2d)"/>: where it applies, at <see cref="ChannelsLastWinogradPositions"/>
    /// positions an image.
    /// </summary>
    internal static bool PrefersChannelsLastWinograd(Tensor input, Conv2d conv)
    {
        if (input.dim() != 4) return false;
        var (least, most) = ChannelsLastWinogradPositions(InferenceKernels.AmdRules);
        long positions = input.shape[2] * input.shape[3];
        return positions >= least && positions <= most && WinogradConvolution.AppliesToPlain(input, conv);
    }

    /// <summary>
    /// The positions an image (least, most) at which <see cref="PrefersChannelsLastWinograd"/> holds: 16×16 on AMD's CPUs
    /// (<paramref name="amd"/>), none elsewhere.
    /// </summary>
    /// <remarks>
    /// Measured on an AMD EPYC Zen 4 (family 25, model 17; docs/performance.md), SD 1.5's UNet shapes at 512 px, batch 2:
    /// at 16×16, where the plain-layout kernel fills half its lanes (1.6–2.3× oneDNN's time), 0.89–0.99× of oneDNN's
    /// time; at 32×32 0.85–0.97× of the plain-layout kernel's; the forward 0.974× as before (nine interleaved rounds). At
    /// 64×64 the plain-layout kernel is faster without the copies, and at 8×8 the weight's transform costs more than the
    /// GEMMs save (1.8× oneDNN's time). Since the plain-layout kernel's products run by oneDNN's brgemm on AMD
    /// (<see cref="BatchedProduct"/>), it is 6–29% faster than the channels-last one at 32×32 too (`sdpipe bench kernels
    /// --sizes 64`, fourteenth session), so the rule keeps 16×16 only. Intel's CPUs are not measured with it; `sdpipe
    /// bench kernels` times it there beside the paths their rules take.
    /// </remarks>
    internal static (long Least, long Most) ChannelsLastWinogradPositions(bool amd) => amd ? (16 * 16, 16 * 16) : (0, -1);

    private const long WinogradPositions = 32 * 32;
    private const long WideChannels = 1280;

    /// <summary>Whether this CPU is AMD's: CPUID's vendor string is <c>AuthenticAMD</c> (the rules follow <see cref="InferenceKernels.AmdRules"/>).</summary>
    internal static bool OnAmd { get; } = X86Base.IsSupported && Vendor() == "AuthenticAMD";

    /// <summary>
    /// The most positions an image at which <see cref="PrefersLibtorchsOwn"/> gives a wide convolution to libtorch's own
    /// path: 16×16, and 4×4 on AMD's CPUs (<paramref name="amd"/>).
    /// </summary>
    /// <remarks>
    /// libtorch's own path is MKL's GEMM, which runs a generic code path on AMD's CPUs, while oneDNN compiles its kernels
    /// for the instruction set it finds. On an AMD EPYC Zen 4 (family 25, model 17; `sdpipe bench kernels`, tcmalloc,
    /// docs/performance.md) oneDNN's time over libtorch's own at SD 1.5's 1280-output-channel shapes was 0.87–0.89× at
    /// 16×16 and 0.80–0.91× at 8×8, and 1.09–1.12× at 4×4. Zen 5 is not measured; it takes AMD's rule.
    /// </remarks>
    internal static long LowResolutionLimit(bool amd) => amd ? 4 * 4 : 16 * 16;

    // CPUID leaf 0 spells the vendor in EBX, EDX, ECX, four ASCII characters each.
    private static string Vendor()
    {
        var (_, ebx, ecx, edx) = X86Base.CpuId(0, 0);
        return Encoding.ASCII.GetString([.. BitConverter.GetBytes(ebx), .. BitConverter.GetBytes(edx), .. BitConverter.GetBytes(ecx)]);
    }

    // TorchSharp 0.107 keeps a module's hooks in protected dictionaries and says nothing of them publicly. A TorchSharp
    // without these fields counts as hooked, so a layer is never taken from its hooks.
    private static readonly FieldInfo[] HookFields = FindHookFields();

    private static FieldInfo[] FindHookFields()
    {
        var hookable = typeof(nn.Module<Tensor, Tensor>).BaseType;
        string[] names = ["pre_hooks", "post_hooks", "module_pre_hooks", "module_post_hooks"];
        var fields = names.Select(n => hookable?.GetField(n, BindingFlags.Instance | BindingFlags.NonPublic))
            .OfType<FieldInfo>().Where(f => typeof(ICollection).IsAssignableFrom(f.FieldType)).ToArray();
        return fields.Length == names.Length ? fields : [];
    }

    /// <summary>Whether a forward hook or pre-hook is registered on <paramref name="module"/> (true when that cannot be told).</summary>
    internal static bool HasHooks(nn.Module<Tensor, Tensor> module) =>
        HookFields.Length == 0 || HookFields.Any(f => f.GetValue(module) is ICollection { Count: > 0 });
}
