using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// An affine <c>nn.GroupNorm</c> that follows the <see cref="Autocast"/> policy: inside a region it normalises in
/// float32 (half inputs upcast, float32 output), outside it is TorchSharp's GroupNorm bit for bit. Keys are
/// <c>weight</c> and <c>bias</c>, initialised to 1 and 0 as PyTorch does (TorchSharp 0.107's own GroupNorm leaves
/// them uninitialised). Build it through <see cref="Norms.GroupNorm"/>.
/// </summary>
public sealed class AutocastGroupNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = nameof(weight))] private Parameter _weight = null!;
    [ComponentName(Name = nameof(bias))] private Parameter _bias = null!;
    private readonly long _numGroups;
    private readonly double _eps;

    /// <summary>Creates the layer.</summary>
    /// <param name="numGroups">Groups the channels are split into.</param>
    /// <param name="numChannels">Channels (dimension 1 of the input).</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="device">Where to create the parameters (<c>meta</c> builds the shapes without memory).</param>
    public AutocastGroupNorm(long numGroups, long numChannels, double eps, Device? device = null) : base(nameof(AutocastGroupNorm))
    {
        _numGroups = numGroups;
        _eps = eps;
        weight = nn.Parameter(torch.empty([numChannels], device: device));
        bias = nn.Parameter(torch.empty([numChannels], device: device));
        using var _ = torch.no_grad();
        _weight.fill_(1.0);
        _bias.zero_();
    }

    /// <summary>Groups the channels are split into.</summary>
    public long num_groups => _numGroups;

    /// <summary>Added to the variance.</summary>
    public double eps => _eps;

    /// <summary>The per-channel scale; setting it replaces (and disposes) the old one.</summary>
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

    /// <summary>The per-channel shift; setting it replaces (and disposes) the old one.</summary>
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

    /// <summary>Normalises <paramref name="input"/> [B, C, ...] over groups of channels.</summary>
    public override Tensor forward(Tensor input)
    {
        if (input.Dimensions < 3) throw new ArgumentException($"GroupNorm needs an input [B, C, ...] of at least 3 dimensions, got {input.Dimensions}", nameof(input));
        return AutocastOps.GroupNorm(input, _numGroups, _weight, _bias, _eps);
    }
}
