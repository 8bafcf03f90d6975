using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AdamW = SdPipeline.Training.Optimization.AdamW;

namespace SdPipeline.Tests.Training.Optimization;

/// <summary>The fused AdamW update against the op-by-op form it replaces (PyTorch's <c>_single_tensor_adamw</c>).</summary>
public sealed class AdamWTests
{
    // Odd sizes exercise the scalar tail after the 8-wide vectors; the large one spans several work chunks.
    private static readonly long[][] Shapes = [[3], [17, 5], [8, 8], [300_001], [64, 3, 3, 3]];

    private static List<(string Name, Parameter Parameter)> Parameters(int seed)
    {
        torch.manual_seed(seed);
        return Shapes.Select((shape, i) => ($"p{i}", new Parameter(torch.randn(shape)))).ToList();
    }

    [Test]
    public void FusedStep_Should_EqualTheOpByOpStep_ToFloatRounding_OverSeveralSteps()
    {
        // Given two identical parameter sets, one updated fused and one op by op
        var fusedParameters = Parameters(1);
        var plainParameters = Parameters(1);
        using var fused = new AdamW(fusedParameters, 0.9, 0.999, 1e-2, 1e-8);
        using var plain = new AdamW(plainParameters, 0.9, 0.999, 1e-2, 1e-8) { Fused = false };

        // When both take five steps on the same gradients (some tiny, some large) at a changing learning rate
        for (int step = 0; step < 5; step++)
        {
            torch.manual_seed(100 + step);
            foreach (var ((_, a), (_, b)) in fusedParameters.Zip(plainParameters))
            {
                var grad = torch.randn(a.shape) * Math.Pow(10, step - 3);
                a.grad = grad.clone();
                b.grad = grad.clone();
            }
            double lr = 1e-3 * (step + 1);
            fused.Step(lr);
            plain.Step(lr);
            fused.ZeroGrad();
            plain.ZeroGrad();
        }

        // Then parameters and moments agree to a few float32 ulps
        foreach (var ((name, a), (_, b)) in fusedParameters.Zip(plainParameters))
            Assert.That((a - b).abs().max().item<float>(), Is.LessThanOrEqualTo(4e-7f * Math.Max(1f, b.abs().max().item<float>())), name);
        var fusedState = fused.StateTensors();
        foreach (var (key, expected) in plain.StateTensors())
            Assert.That((fusedState[key] - expected).abs().max().item<float>(), Is.LessThanOrEqualTo(1e-6f * Math.Max(1e-12f, expected.abs().max().item<float>())), key);
        Assert.That(fused.StepCount, Is.EqualTo(5));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Step_Should_GiveTheBitsOfGradientsScaledInPlace_When_AGradientScaleIsGiven(bool fusedKernel)
    {
        // Given two identical parameter sets and gradients, one set's gradients clipped in place first (clip_grad_norm_'s way)
        var scaledParameters = Parameters(3);
        var inPlaceParameters = Parameters(3);
        using var scaled = new AdamW(scaledParameters) { Fused = fusedKernel };
        using var inPlace = new AdamW(inPlaceParameters) { Fused = fusedKernel };
        const float coefficient = 0.3712f;
        for (int step = 0; step < 3; step++)
        {
            torch.manual_seed(200 + step);
            foreach (var ((_, a), (_, b)) in scaledParameters.Zip(inPlaceParameters))
            {
                var grad = torch.randn(a.shape);
                a.grad = grad.clone();
                b.grad = grad.clone();
                b.grad.mul_(coefficient);
            }

            // When one optimizer is given the coefficient and the other the scaled gradients
            scaled.Step(1e-3, coefficient);
            inPlace.Step(1e-3);
            scaled.ZeroGrad();
            inPlace.ZeroGrad();
        }

        // Then parameters and moments are the same bits
        foreach (var ((name, a), (_, b)) in scaledParameters.Zip(inPlaceParameters))
            Assert.That(torch.equal(a, b).all().item<bool>(), Is.True, name);
        var scaledState = scaled.StateTensors();
        foreach (var (key, expected) in inPlace.StateTensors())
            Assert.That(torch.equal(scaledState[key], expected).all().item<bool>(), Is.True, key);
    }

    [Test]
    public void FusedStep_Should_LeaveParametersWithoutGradientsAlone()
    {
        var parameters = Parameters(2);
        var before = parameters[1].Parameter.clone();
        parameters[0].Parameter.grad = torch.ones_like(parameters[0].Parameter);
        using var optimizer = new AdamW(parameters);

        optimizer.Step(1e-3);

        Assert.That(torch.equal(parameters[1].Parameter, before).all().item<bool>(), Is.True);
        Assert.That(optimizer.StateTensors().Keys, Is.EquivalentTo(new[] { "exp_avg.p0", "exp_avg_sq.p0" }));
    }
}
