using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>An affine <c>nn.GroupNorm</c> under the <see cref="Autocast"/> policy: in a region it normalises in float32 (half inputs upcast, float32 output).</summary>
public sealed class AutocastGroupNorm : AutocastLayer
{
    private readonly long _numGroups;
    private readonly double _eps;

    /// <summary>Takes over <paramref name="plain"/>'s parameters.</summary>
    /// <exception cref="NotSupportedException">The norm has no affine parameters.</exception>
    public AutocastGroupNorm(GroupNorm plain)
        : base(nameof(AutocastGroupNorm), plain.weight ?? throw new NotSupportedException("autocast covers affine GroupNorms only"), plain.bias)
    {
        _numGroups = plain.num_groups;
        _eps = plain.eps;
    }

    /// <summary>Groups the channels are split into.</summary>
    public long num_groups => _numGroups;

    /// <summary>Added to the variance.</summary>
    public double eps => _eps;

    /// <summary>Normalises <paramref name="input"/> [B, C, ...] over groups of channels.</summary>
    public override Tensor forward(Tensor input)
    {
        if (input.Dimensions < 3) throw new ArgumentException($"GroupNorm needs an input [B, C, ...] of at least 3 dimensions, got {input.Dimensions}", nameof(input));
        return AutocastOps.GroupNorm(input, _numGroups, Use(_weight)!, Use(_bias), _eps);
    }
}
