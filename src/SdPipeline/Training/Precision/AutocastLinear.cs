using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary><c>nn.Linear</c> under the <see cref="Autocast"/> policy: in a region it multiplies in the region's dtype (its float32 weights cast on the fly).</summary>
public sealed class AutocastLinear : AutocastLayer
{
    /// <summary>Takes over <paramref name="plain"/>'s parameters.</summary>
    public AutocastLinear(Linear plain) : base(nameof(AutocastLinear), plain.weight, plain.bias)
    {
    }

    /// <summary>Input width.</summary>
    public long InFeatures => _weight.shape[1];

    /// <summary>Output width.</summary>
    public long OutFeatures => _weight.shape[0];

    /// <inheritdoc />
    public override Tensor forward(Tensor input) => AutocastOps.Linear(input, Use(_weight)!, Use(_bias));
}
