using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// <c>nn.Linear</c> that follows the <see cref="Autocast"/> policy: inside a region it multiplies in the region's
/// dtype (its float32 weights cast on the fly), outside it is TorchSharp's Linear bit for bit. Keys are
/// <c>weight</c> and <c>bias</c>, and the initialisation draws the same random numbers as <c>nn.Linear</c>
/// (Kaiming-uniform weight, uniform bias in ±1/√fan_in), so seeded models are unchanged.
/// </summary>
public sealed class AutocastLinear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter _weight = null!;
    [ComponentName(Name = nameof(bias))] private Parameter? _bias;

    /// <summary>Creates the layer.</summary>
    /// <param name="inFeatures">Input width.</param>
    /// <param name="outFeatures">Output width.</param>
    /// <param name="hasBias">Whether the layer adds a learned bias.</param>
    /// <param name="device">Where to create the parameters (<c>meta</c> builds the shapes without memory).</param>
    public AutocastLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null) : base(nameof(AutocastLinear))
    {
        // Same order of random draws as TorchSharp's (and PyTorch's) Linear.reset_parameters.
        weight = torch.empty([outFeatures, inFeatures], device: device).AsParameter();
        nn.init.kaiming_uniform_(weight, a: Math.Sqrt(5));
        if (hasBias)
        {
            bias = torch.empty([outFeatures], device: device).AsParameter();
            double bound = inFeatures > 0 ? 1 / Math.Sqrt(inFeatures) : 0;
            nn.init.uniform_(bias, -bound, bound);
        }
    }

    /// <summary>Input width.</summary>
    public long InFeatures => _weight.shape[1];

    /// <summary>Output width.</summary>
    public long OutFeatures => _weight.shape[0];

    /// <summary>The weight [out, in]; setting it replaces (and disposes) the old one.</summary>
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
        if (Lora is not { } adapter) return AutocastOps.Linear(input, _weight, _bias);
        using var output = AutocastOps.Linear(input, _weight, _bias);
        using var update = adapter.Forward(input, training);
        return output + update;
    }
}
