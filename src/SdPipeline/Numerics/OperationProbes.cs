using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Numerics;

/// <summary>
/// One configuration of one operation a model runs (a convolution's channels, kernel, stride and padding; a linear
/// layer's sizes; a norm; attention's head width), with small inputs to run it forward and backward on. Records compare
/// by value, so a model's many layers of one configuration make one probe.
/// </summary>
public abstract record OperationProbe
{
    /// <summary>What the probe runs, as a person reads it (<c>conv2d 320→4 k3 s1 p1</c>).</summary>
    public abstract string Name { get; }

    /// <summary>The operation's inputs and parameters in float64, drawn from <paramref name="generator"/>, on the CPU.</summary>
    internal abstract Tensor[] Inputs(Generator generator);

    /// <summary>The operation on <paramref name="inputs"/> (all of one dtype, on one device); every input gets a gradient.</summary>
    internal abstract Tensor Forward(Tensor[] inputs);

    /// <summary>What each input is called in a failure message, in the order of <see cref="Inputs"/>.</summary>
    internal abstract string[] InputNames { get; }

    /// <summary>
    /// The width a probe runs a layer's channel or feature count at: counts up to 320 as they are; wider ones at
    /// 256 + (count mod 64), which keeps the count's 16- and 64-wide blocking (how oneDNN and GEMM kernels tile
    /// channels) and its kernel, stride and padding. At full width the float64 copies of SD 1.5's convolution
    /// weights alone are 5 GB of memory traffic and the check took 7 s of CPU; reduced, it takes well under a second.
    /// The kernel found wrong so far (AMD Zen 5) is chosen by the output count being under 16, which is kept.
    /// </summary>
    public static long ProbeWidth(long count) => count <= 320 ? count : 256 + count % 64;

    /// <summary>Standard-normal values scaled by <paramref name="scale"/>, in float64.</summary>
    private protected static Tensor Normal(Generator generator, long[] shape, double scale = 1.0) =>
        torch.randn(shape, dtype: ScalarType.Float64, generator: generator).mul_(scale);
}

/// <summary>A 2-D convolution (dilation 1, one group), the class oneDNN's JIT kernels are chosen by.</summary>
/// <param name="InChannels">Input channels.</param>
/// <param name="OutChannels">Output channels.</param>
/// <param name="Kernel">Square kernel size.</param>
/// <param name="Stride">Stride.</param>
/// <param name="Padding">Zero padding.</param>
/// <param name="Size">Height and width of the probe's input: smaller for wide layers, so the check stays cheap.</param>
public sealed record Conv2dProbe(long InChannels, long OutChannels, long Kernel, long Stride, long Padding, long Size) : OperationProbe
{
    /// <summary>The probe for a layer: its channels at <see cref="OperationProbe.ProbeWidth"/>, at an input size that keeps the float64 backward to a few tens of MFLOP.</summary>
    public static Conv2dProbe For(long inChannels, long outChannels, long kernel, long stride, long padding)
    {
        inChannels = ProbeWidth(inChannels);
        outChannels = ProbeWidth(outChannels);
        long size = 16;
        while (size > 4 && 2.0 * inChannels * outChannels * kernel * kernel * size * size > 40e6) size /= 2;
        return new Conv2dProbe(inChannels, outChannels, kernel, stride, padding, size);
    }

    /// <inheritdoc />
    public override string Name => $"conv2d {InChannels}→{OutChannels} k{Kernel} s{Stride} p{Padding}";

    internal override string[] InputNames => ["input", "weight", "bias"];

    internal override Tensor[] Inputs(Generator generator) =>
    [
        Normal(generator, [1, InChannels, Size, Size]),
        Normal(generator, [OutChannels, InChannels, Kernel, Kernel], 1.0 / Math.Sqrt(InChannels * Kernel * Kernel)),
        Normal(generator, [OutChannels], 0.1),
    ];

    internal override Tensor Forward(Tensor[] inputs) =>
        nn.functional.conv2d(FaultInjection.ConvolutionInput(inputs[0], OutChannels), inputs[1], inputs[2],
            [Stride, Stride], [Padding, Padding], [1, 1], 1);
}

/// <summary>A linear layer (<c>x·Wᵀ + b</c>) on a short sequence.</summary>
/// <param name="InFeatures">Input width.</param>
/// <param name="OutFeatures">Output width.</param>
public sealed record LinearProbe(long InFeatures, long OutFeatures) : OperationProbe
{
    /// <summary>The probe for a layer, its sizes at <see cref="OperationProbe.ProbeWidth"/>.</summary>
    public static LinearProbe For(long inFeatures, long outFeatures) => new(ProbeWidth(inFeatures), ProbeWidth(outFeatures));

    /// <inheritdoc />
    public override string Name => $"linear {InFeatures}→{OutFeatures}";

    internal override string[] InputNames => ["input", "weight", "bias"];

    internal override Tensor[] Inputs(Generator generator) =>
    [
        Normal(generator, [2, 8, InFeatures]),
        Normal(generator, [OutFeatures, InFeatures], 1.0 / Math.Sqrt(InFeatures)),
        Normal(generator, [OutFeatures], 0.1),
    ];

    internal override Tensor Forward(Tensor[] inputs) => nn.functional.linear(inputs[0], inputs[1], inputs[2]);
}

/// <summary>An affine group norm.</summary>
/// <param name="Groups">Groups the channels are split into.</param>
/// <param name="Channels">Channels.</param>
/// <param name="Eps">Added to the variance.</param>
public sealed record GroupNormProbe(long Groups, long Channels, double Eps) : OperationProbe
{
    /// <inheritdoc />
    public override string Name => $"group_norm {Groups}×{Channels / Groups} channels";

    internal override string[] InputNames => ["input", "weight", "bias"];

    internal override Tensor[] Inputs(Generator generator) =>
        [Normal(generator, [2, Channels, 4, 4]), Normal(generator, [Channels], 0.5).add_(1.0), Normal(generator, [Channels], 0.1)];

    internal override Tensor Forward(Tensor[] inputs) => nn.functional.group_norm(inputs[0], Groups, inputs[1], inputs[2], Eps);
}

/// <summary>An affine layer norm over the last dimension.</summary>
/// <param name="Features">The normalised width.</param>
/// <param name="Eps">Added to the variance.</param>
public sealed record LayerNormProbe(long Features, double Eps) : OperationProbe
{
    /// <inheritdoc />
    public override string Name => $"layer_norm {Features}";

    internal override string[] InputNames => ["input", "weight", "bias"];

    internal override Tensor[] Inputs(Generator generator) =>
        [Normal(generator, [2, 8, Features]), Normal(generator, [Features], 0.5).add_(1.0), Normal(generator, [Features], 0.1)];

    internal override Tensor Forward(Tensor[] inputs) => nn.functional.layer_norm(inputs[0], [Features], inputs[1], inputs[2], Eps);
}

/// <summary><c>scaled_dot_product_attention</c> over heads of one width.</summary>
/// <param name="Heads">Heads.</param>
/// <param name="HeadDim">Width of one head.</param>
public sealed record AttentionProbe(long Heads, long HeadDim) : OperationProbe
{
    /// <inheritdoc />
    public override string Name => $"attention {Heads} heads × {HeadDim}";

    internal override string[] InputNames => ["query", "key", "value"];

    internal override Tensor[] Inputs(Generator generator) =>
    [
        Normal(generator, [2, Heads, 16, HeadDim]),
        Normal(generator, [2, Heads, 12, HeadDim]),
        Normal(generator, [2, Heads, 12, HeadDim]),
    ];

    internal override Tensor Forward(Tensor[] inputs) => nn.functional.scaled_dot_product_attention(inputs[0], inputs[1], inputs[2]);
}

/// <summary>An elementwise activation.</summary>
/// <param name="Activation"><c>silu</c>, <c>gelu</c> or <c>quick_gelu</c>.</param>
public sealed record ActivationProbe(string Activation) : OperationProbe
{
    /// <inheritdoc />
    public override string Name => Activation;

    internal override string[] InputNames => ["input"];

    internal override Tensor[] Inputs(Generator generator) => [Normal(generator, [4, 256], 2.0)];

    internal override Tensor Forward(Tensor[] inputs) => Activation switch
    {
        "silu" => nn.functional.silu(inputs[0]),
        "gelu" => nn.functional.gelu(inputs[0]),
        "quick_gelu" => inputs[0] * torch.sigmoid(inputs[0] * 1.702),
        _ => throw new ArgumentException($"no probe for activation '{Activation}'"),
    };
}
