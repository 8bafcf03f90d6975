using SdPipeline.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>The global gradient norm and clipping coefficient of <c>clip_grad_norm_</c>, with the gradients left for AdamW to scale.</summary>
[NonParallelizable] // one test sets libtorch's thread count, which is the process's
public sealed class GradientNormTests
{
    // Odd sizes exercise the scalar tail; 300 001 elements span several chunks; a transposed gradient is not contiguous
    // and a float64 one not float32: both take libtorch's norm.
    private static List<Parameter> Parameters()
    {
        torch.manual_seed(7);
        var parameters = new List<Parameter>();
        foreach (long[] shape in new long[][] { [3], [17, 5], [300_001], [64, 3, 3, 3] })
            parameters.Add(new Parameter(torch.zeros(shape)) { grad = torch.randn(shape) * 1e-2 });
        parameters.Add(new Parameter(torch.zeros(48, 64)) { grad = torch.randn(64, 48).t() });
        parameters.Add(new Parameter(torch.zeros(5, dtype: ScalarType.Float64)) { grad = torch.randn(5, dtype: ScalarType.Float64) });
        parameters.Add(new Parameter(torch.zeros(9))); // no gradient
        return parameters;
    }

    private static double Float64Norm(IEnumerable<Parameter> parameters) =>
        Math.Sqrt(parameters.Where(p => p.grad is not null).Sum(p => p.grad!.to(ScalarType.Float64).square().sum().item<double>()));

    [Test]
    public void Measure_Should_BeTheNormOfEveryGradient_AndLeaveTheGradientsUnchanged()
    {
        var parameters = Parameters();
        var before = parameters.Where(p => p.grad is not null).Select(p => p.grad!.clone()).ToList();

        var clip = GradientNorm.Measure(parameters, maxNorm: 1.0);

        double expected = Float64Norm(parameters);
        Assert.That(clip.Norm, Is.EqualTo(expected).Within(1e-7 * expected));
        Assert.That(expected, Is.GreaterThan(1), "the case clips");
        Assert.That(clip.Coefficient, Is.EqualTo(1f / ((float)clip.Norm + 1e-6f)));
        foreach (var (grad, original) in parameters.Where(p => p.grad is not null).Select(p => p.grad!).Zip(before))
            Assert.That(torch.equal(grad, original).all().item<bool>(), Is.True, "AdamW applies the coefficient; the gradients stay as backward left them");
    }

    [Test]
    public void Measure_Should_GiveTheSameNorm_OnOneThreadAndOnTwo()
    {
        var parameters = Parameters();
        int threads = torch.get_num_threads();
        try
        {
            torch.set_num_threads(1);
            double one = GradientNorm.Measure(parameters, 0).Norm;
            torch.set_num_threads(2);
            double two = GradientNorm.Measure(parameters, 0).Norm;
            Assert.That(two, Is.EqualTo(one), "chunk sums are added in a fixed order, whoever computed them");
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [TestCase(0.0, Description = "clipping off")]
    [TestCase(1e6, Description = "the norm within the limit")]
    public void Coefficient_Should_BeOne_When_NothingIsClipped(double maxNorm)
    {
        var clip = GradientNorm.Measure(Parameters(), maxNorm);

        Assert.That(clip.Coefficient, Is.EqualTo(1f));
        double expected = Float64Norm(Parameters());
        Assert.That(clip.Norm, Is.EqualTo(expected).Within(1e-7 * expected));
    }

    [Test]
    public void Coefficient_Should_BeOne_AndTheNormNotFinite_When_AGradientIsNot()
    {
        var parameters = Parameters();
        using (torch.no_grad()) parameters[2].grad![17] = float.PositiveInfinity;

        var clip = GradientNorm.Measure(parameters, 1.0);

        Assert.That(double.IsFinite(clip.Norm), Is.False);
        Assert.That(clip.Coefficient, Is.EqualTo(1f), "the caller refuses the step; nothing is scaled");
    }
}
