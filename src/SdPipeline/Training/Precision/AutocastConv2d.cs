using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>
/// <c>nn.Conv2d</c> (zero padding, dilation 1, one group: the only kind Stable Diffusion uses) under the
/// <see cref="Autocast"/> policy: in a region it convolves in the region's dtype (its float32 weights cast on the fly).
/// </summary>
public sealed class AutocastConv2d : AutocastLayer
{
    private readonly long[] _stride;
    private readonly long[] _padding;

    /// <summary>Takes over <paramref name="plain"/>'s parameters.</summary>
    /// <exception cref="NotSupportedException">The convolution pads other than with zeros, dilates or groups.</exception>
    public AutocastConv2d(Conv2d plain) : base(nameof(AutocastConv2d), plain.weight, plain.bias)
    {
        if (plain.padding_mode != PaddingModes.Zeros || plain.padding_type is not null || plain.groups != 1 || plain.dilation.Any(d => d != 1))
            throw new NotSupportedException("autocast covers convolutions with explicit zero padding, dilation 1 and one group");
        _stride = [.. plain.stride];
        _padding = [.. plain.padding!];
    }

    /// <summary>Stride in each spatial direction.</summary>
    public IReadOnlyList<long> Stride => _stride;

    /// <summary>Zero padding on each side, per spatial direction.</summary>
    public IReadOnlyList<long> Padding => _padding;

    /// <summary>Kernel height and width.</summary>
    public IReadOnlyList<long> KernelSize => [_weight.shape[2], _weight.shape[3]];

    /// <summary>Output channels.</summary>
    public long OutChannels => _weight.shape[0];

    /// <inheritdoc />
    /// <remarks>
    /// Outside an autocast region, a 3×3, stride-1 convolution runs as <see cref="TrainingConvolutionFunction"/>
    /// where that applies (AMD's CPUs, float32, oneDNN off) unless <c>runtime.kernels=off</c>: the same result to float32
    /// rounding, and the choice depends on shapes only, so gradient checkpointing's recomputation and a resumed run
    /// repeat the arithmetic.
    /// </remarks>
    public override Tensor forward(Tensor input)
    {
        var weight = Use(_weight)!;
        var bias = Use(_bias);
        if (Autocast.Current is null && InferenceKernels.Enabled && TrainingConvolutionFunction.AppliesToTraining(input, weight, bias, _stride, _padding))
            return TrainingConvolutionFunction.Convolve(input, weight, bias);
        return AutocastOps.Conv2d(input, weight, bias, _stride, _padding);
    }
}
