using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>An affine <c>nn.LayerNorm</c> under the <see cref="Autocast"/> policy: in a region it normalises in float32 (half inputs upcast, float32 output).</summary>
public sealed class AutocastLayerNorm : AutocastLayer
{
    private readonly long[] _normalizedShape;
    private readonly double _eps;

    /// <summary>Takes over <paramref name="plain"/>'s parameters.</summary>
    /// <exception cref="NotSupportedException">The norm has no affine parameters.</exception>
    public AutocastLayerNorm(LayerNorm plain)
        : base(nameof(AutocastLayerNorm), plain.weight ?? throw new NotSupportedException("autocast covers affine LayerNorms only"), plain.bias)
    {
        _normalizedShape = [.. plain.normalized_shape];
        _eps = plain.eps;
    }

    /// <summary>Added to the variance.</summary>
    public double eps => _eps;

    /// <inheritdoc />
    public override Tensor forward(Tensor input) => AutocastOps.LayerNorm(input, _normalizedShape, Use(_weight)!, Use(_bias), _eps);
}
