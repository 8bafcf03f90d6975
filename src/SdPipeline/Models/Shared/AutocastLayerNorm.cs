using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// An affine <c>nn.LayerNorm</c> over the last dimension that follows the <see cref="Autocast"/> policy: inside a
/// region it normalises in float32 (half inputs upcast, float32 output), outside it is TorchSharp's LayerNorm bit for
/// bit. Keys are <c>weight</c> and <c>bias</c>, initialised to 1 and 0 as in <c>nn.LayerNorm</c>.
/// </summary>
public sealed class AutocastLayerNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter _weight = null!;
    [ComponentName(Name = nameof(bias))] private Parameter _bias = null!;
    private readonly long[] _normalizedShape;
    private readonly double _eps;

    /// <summary>Creates the layer.</summary>
    /// <param name="normalizedSize">Width of the last dimension, which is normalised.</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="device">Where to create the parameters (<c>meta</c> builds the shapes without memory).</param>
    public AutocastLayerNorm(long normalizedSize, double eps = 1e-5, Device? device = null) : base(nameof(AutocastLayerNorm))
    {
        _normalizedShape = [normalizedSize];
        _eps = eps;
        weight = nn.Parameter(torch.empty(_normalizedShape, device: device));
        bias = nn.Parameter(torch.empty(_normalizedShape, device: device));
        nn.init.ones_(_weight);
        nn.init.zeros_(_bias);
    }

    /// <summary>Added to the variance.</summary>
    public double eps => _eps;

    /// <summary>The per-feature scale; setting it replaces (and disposes) the old one.</summary>
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

    /// <summary>The per-feature shift; setting it replaces (and disposes) the old one.</summary>
    public Parameter bias
    {
        get => _bias;
        set
        {
            if (ReferenceEquals(value, _bias)) return;
            _bias?.Dispose();
            _bias = (Parameter)value.DetachFromDisposeScope();
            ConditionallyRegisterParameter(nameof(bias), _bias);
        }
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input) => AutocastOps.LayerNorm(input, _normalizedShape, _weight, _bias, _eps);
}
