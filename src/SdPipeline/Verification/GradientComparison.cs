using static TorchSharp.torch;

namespace SdPipeline.Verification;

/// <summary>
/// Gradients against reference gradients, each within 1e-4 × its own abs max (<see cref="ParityTolerance.Gradient"/>).
/// </summary>
/// <remarks>
/// Some gradients are zero by construction: where a GroupNorm group holds one channel, the norm removes any
/// per-channel constant added before it (in diffusers' UNets with 32 channels and 32 groups: conv1.bias and
/// time_emb_proj before norm2, the biases ending the last up block before conv_norm_out). Both frameworks then
/// report rounding noise (~1e-9) whose relative error means nothing. A reference gradient whose abs max is below
/// <c>1e-6 ×</c> the largest reference gradient is such noise; ours must then be noise too (|ours| ≤ that floor).
/// </remarks>
public static class GradientComparison
{
    /// <summary>The share of the largest reference gradient below which a gradient counts as rounding noise.</summary>
    public const double NoiseFloorFraction = 1e-6;

    /// <summary>One comparison per gradient, named after it.</summary>
    /// <param name="gradients">(name, ours, reference); ours may be null when the parameter got no gradient.</param>
    public static List<TensorComparison> Compare(IReadOnlyList<(string Name, Tensor? Ours, Tensor Reference)> gradients)
    {
        if (gradients.Count == 0) return [];
        double floor = NoiseFloorFraction * gradients.Max(g => AbsMax(g.Reference));
        var comparisons = new List<TensorComparison>();
        foreach (var (name, ours, reference) in gradients)
        {
            if (ours is null)
                throw new ParityFixtureException($"{name} has no gradient after backward (not part of the loss?)");
            if (AbsMax(reference) < floor)
            {
                using var zero = zeros_like(reference);
                comparisons.Add(TensorComparison.Of($"{name} (rounding noise in the reference)", ours, zero, ParityTolerance.Absolute(floor)));
            }
            else
                comparisons.Add(TensorComparison.Of(name, ours, reference, ParityTolerance.Gradient));
        }
        return comparisons;
    }

    private static double AbsMax(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        return tensor.detach().abs().max().to(ScalarType.Float64).item<double>();
    }
}
