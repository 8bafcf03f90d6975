using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>How far one run's parameter gradients are from another's.</summary>
/// <param name="Global">The largest element difference over all gradients, relative to the largest gradient element.</param>
/// <param name="PerTensor">
/// The largest element difference relative to that tensor's abs max, over the tensors whose abs max is at least 1% of
/// the largest (below that lie the structurally zero gradients of the tiny UNet, rounding noise in any run).
/// </param>
/// <param name="WorstTensor">The tensor where <paramref name="PerTensor"/> was found.</param>
internal sealed record GradientComparison(double Global, double PerTensor, string WorstTensor)
{
    public static GradientComparison Of(Dictionary<string, Tensor?> expected, Dictionary<string, Tensor?> actual)
    {
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        var rows = expected.Select(e =>
        {
            Assert.That(e.Value, Is.Not.Null, $"{e.Key} has no gradient in the reference run");
            Assert.That(actual[e.Key], Is.Not.Null, $"{e.Key} has no gradient");
            Assert.That(actual[e.Key]!.dtype, Is.EqualTo(e.Value!.dtype), e.Key);
            double scale = e.Value.abs().max().item<float>();
            double diff = (actual[e.Key]!.to(ScalarType.Float64) - e.Value.to(ScalarType.Float64)).abs().max().item<double>();
            return (Name: e.Key, Scale: scale, Diff: diff);
        }).ToList();
        double largest = rows.Max(r => r.Scale);
        var worst = rows.Where(r => r.Scale >= 0.01 * largest).MaxBy(r => r.Diff / r.Scale);
        return new GradientComparison(rows.Max(r => r.Diff) / largest, worst.Diff / worst.Scale, worst.Name);
    }

    public override string ToString() =>
        $"largest difference {Global:E2} of the largest gradient; worst tensor {WorstTensor} {PerTensor:E2} of its abs max";
}
