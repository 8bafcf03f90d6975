using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>
/// A model layer (<c>nn.Linear</c>, <c>nn.Conv2d</c>, <c>nn.GroupNorm</c>, <c>nn.LayerNorm</c>) rebuilt to follow the
/// <see cref="Autocast"/> policy. It takes over the plain layer's parameters under the same keys (<c>weight</c>,
/// <c>bias</c>), so the model's <c>state_dict()</c> and the optimizer see the same tensors, and outside a region it
/// computes exactly what the plain layer computes. <see cref="AutocastLayers.Apply"/> puts these into a model.
/// </summary>
public abstract class AutocastLayer : nn.Module<Tensor, Tensor>
{
    // Protected, not private: TorchSharp finds parameter fields by reflection on the concrete type (to update them
    // when the module is moved), and reflection does not see a base class's private fields.
    [ComponentName(Name = nameof(weight))] protected Parameter _weight = null!;
    [ComponentName(Name = nameof(bias))] protected Parameter? _bias;

    /// <summary>Takes over <paramref name="weight"/> and <paramref name="bias"/> (the storage, not a copy).</summary>
    protected AutocastLayer(string name, Parameter weight, Parameter? bias) : base(name)
    {
        this.weight = TakeOver(weight)!;
        this.bias = TakeOver(bias);
    }

    /// <summary>The weight; setting it replaces (and disposes) the old one.</summary>
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

    /// <summary>The bias, or null; setting it replaces (and disposes) the old one.</summary>
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
    /// Where a trainable parameter goes on its way into the layer's operation while gradients are recorded: set by
    /// <see cref="FusedBackwardPass"/> to a node that steps the optimizer with the parameter's gradient
    /// in backward; null (the default) passes parameters as they are.
    /// </summary>
    internal Func<Parameter, Tensor>? ParameterRoute { get; set; }

    /// <summary><paramref name="parameter"/> as the layer's operation should take it (see <see cref="ParameterRoute"/>).</summary>
    protected Tensor? Use(Parameter? parameter) =>
        parameter is { requires_grad: true } && ParameterRoute is { } route && torch.is_grad_enabled() ? route(parameter) : parameter;

    // A new parameter handle on the same storage, so the plain layer can be disposed without freeing it.
    private static Parameter? TakeOver(Parameter? parameter) =>
        parameter is null ? null : new Parameter(parameter.detach(), parameter.requires_grad);
}
