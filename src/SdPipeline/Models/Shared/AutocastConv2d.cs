using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// A square-kernel <c>nn.Conv2d</c> (zero padding, dilation 1, one group) that follows the <see cref="Autocast"/>
/// policy: inside a region it convolves in the region's dtype (its float32 weights cast on the fly), outside it is
/// TorchSharp's Conv2d bit for bit. Keys are <c>weight</c> and <c>bias</c>, and the initialisation draws the same
/// random numbers as <c>nn.Conv2d</c>, so seeded models are unchanged.
/// </summary>
public sealed class AutocastConv2d : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter _weight = null!;
    [ComponentName(Name = nameof(bias))] private Parameter? _bias;
    private readonly long[] _stride;
    private readonly long[] _padding;

    /// <summary>Creates the layer.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="kernelSize">Kernel height and width.</param>
    /// <param name="stride">Stride in both directions.</param>
    /// <param name="padding">Zero padding on every side.</param>
    /// <param name="hasBias">Whether the layer adds a learned bias.</param>
    /// <param name="device">Where to create the parameters (<c>meta</c> builds the shapes without memory).</param>
    public AutocastConv2d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0, bool hasBias = true,
        Device? device = null) : base(nameof(AutocastConv2d))
    {
        _stride = [stride, stride];
        _padding = [padding, padding];
        // Same allocations and order of random draws as TorchSharp's Convolution constructor and reset_parameters.
        weight = nn.Parameter(torch.empty([outChannels, inChannels, kernelSize, kernelSize], device: device));
        if (hasBias) bias = nn.Parameter(torch.empty([outChannels], device: device));
        nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        if (_bias is not null)
        {
            long fanIn = inChannels * kernelSize * kernelSize;
            if (fanIn != 0) nn.init.uniform_(_bias, -1 / Math.Sqrt(fanIn), 1 / Math.Sqrt(fanIn));
        }
    }

    /// <summary>Stride in each spatial direction.</summary>
    public IReadOnlyList<long> Stride => _stride;

    /// <summary>Zero padding on each side, per spatial direction.</summary>
    public IReadOnlyList<long> Padding => _padding;

    /// <summary>Kernel height and width.</summary>
    public IReadOnlyList<long> KernelSize => [_weight.shape[2], _weight.shape[3]];

    /// <summary>Output channels.</summary>
    public long OutChannels => _weight.shape[0];

    /// <summary>The weight [out, in, k, k]; setting it replaces (and disposes) the old one.</summary>
    public Parameter weight
    {
        get => _weight;
        set
        {
            if (ReferenceEquals(value, _weight)) return;
            _weight?.Dispose();
            _weight = (Parameter)value.DetachFromDisposeScope();
            ConditionallyRegisterParameter(nameof(weight), _weight);
        }
    }

    /// <summary>The bias [out], or null; setting it replaces (and disposes) the old one.</summary>
    public Parameter? bias
    {
        get => _bias;
        set
        {
            if (ReferenceEquals(value, _bias)) return;
            _bias?.Dispose();
            _bias = (Parameter?)value?.DetachFromDisposeScope();
            ConditionallyRegisterParameter(nameof(bias), _bias);
        }
    }

    /// <summary>
    /// A LoRA adapter whose update is added to the output, or null. It is not a registered submodule: the layer's
    /// state_dict stays the base layer's, and the adapter's weights are saved in a LoRA layout by <see cref="Lora.LoraNetwork"/>.
    /// </summary>
    public Lora.LoraAdapter? Lora { get; set; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        if (Lora is not { } adapter) return AutocastOps.Conv2d(input, _weight, _bias, _stride, _padding);
        using var output = AutocastOps.Conv2d(input, _weight, _bias, _stride, _padding);
        using var update = adapter.Forward(input, training);
        return output + update;
    }
}
