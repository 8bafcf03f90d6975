using SdPipeline.Verification;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Verification;

/// <summary>The verdicts of one comparison: what each tolerance of the fixtures README lets through, and what not.</summary>
public sealed class TensorComparisonTests
{
    [Test]
    public void Of_Should_AllowAFewSignFlips_When_ComparingParametersAfterAnAdamWStep()
    {
        using var scope = NewDisposeScope();
        // Given 2000 parameters of which 2 (0.1 %) took the step with the other sign: 2·lr away
        var reference = torch.zeros(2000);
        var ours = reference.clone();
        ours[0] = torch.tensor(2e-4f);
        ours[1] = torch.tensor(-2e-4f);
        var tolerance = ParityTolerance.ParameterAfterStep(learningRate: 1e-4);

        // Then that passes, a third flip or one element past 2·lr does not
        Assert.That(TensorComparison.Of("p", ours, reference, tolerance).Passed, Is.True);
        var threeFlips = ours.clone();
        threeFlips[2] = torch.tensor(2e-4f);
        Assert.That(TensorComparison.Of("p", threeFlips, reference, tolerance).Passed, Is.False);
        var tooFar = ours.clone();
        tooFar[0] = torch.tensor(3e-4f);
        var failure = TensorComparison.Of("p", tooFar, reference, tolerance);
        Assert.That(failure.Passed, Is.False);
        Assert.That(failure.Detail, Does.Contain("2 of 2000 elements over 1E-06").And.Contain("at [0]"));
    }

    [Test]
    public void Of_Should_ScaleTheBoundWithTheReference_When_ToleranceIsAtolOrRtolOfTheMax()
    {
        using var scope = NewDisposeScope();
        var small = torch.tensor(new[] { 0.5f, -0.2f });
        var large = torch.tensor(new[] { 30f, -2f });

        // 1e-4 absolute below an abs max of 1; 1e-4 of the abs max above it
        Assert.That(TensorComparison.Of("x", small + 9e-5f, small, ParityTolerance.ModelOutput).Passed, Is.True);
        Assert.That(TensorComparison.Of("x", small + 2e-4f, small, ParityTolerance.ModelOutput).Passed, Is.False);
        Assert.That(TensorComparison.Of("x", large + 2e-3f, large, ParityTolerance.ModelOutput).Passed, Is.True);
        Assert.That(TensorComparison.Of("x", large + 4e-3f, large, ParityTolerance.ModelOutput).Passed, Is.False);
    }

    [Test]
    public void Of_Should_JudgeEachElement_When_ToleranceIsRelativePerElement()
    {
        using var scope = NewDisposeScope();
        // Given a table whose small entry is off by 1e-5 relative while its abs max dwarfs that error
        var reference = torch.tensor(new[] { 1000.0, 0.001, 0.0 });
        var ours = torch.tensor(new[] { 1000.0, 0.00100001, 0.0 });

        var comparison = TensorComparison.Of("table", ours, reference, ParityTolerance.SchedulerTable);

        // Then it fails (the exact zero is a match), and the reported relative error is the per-element one
        Assert.That(comparison.Passed, Is.False);
        Assert.That(comparison.MaxRelError, Is.EqualTo(1e-5).Within(1e-9));
    }

    [Test]
    public void Of_Should_Fail_When_OursHoldsNaN()
    {
        using var scope = NewDisposeScope();
        var reference = torch.ones(3);
        var ours = torch.tensor(new[] { 1f, float.NaN, 1f });

        var comparison = TensorComparison.Of("x", ours, reference, ParityTolerance.SchedulerLoop);

        Assert.That(comparison.Passed, Is.False);
        Assert.That(comparison.Detail, Does.Contain("at [1]: ours NaN"));
    }

    [Test]
    public void Of_Should_RefuseToCompare_When_ShapesDiffer()
    {
        using var scope = NewDisposeScope();

        var error = Assert.Throws<ParityFixtureException>(() => TensorComparison.Of("out", torch.zeros(2, 3), torch.zeros(3, 2), ParityTolerance.Exact))!;

        Assert.That(error.Message, Is.EqualTo("out: ours has shape [2, 3], the reference [3, 2]"));
    }

    [Test]
    public void From_Should_ShowTheComparisonClosestToItsBound_When_ARowHasSeveral()
    {
        using var scope = NewDisposeScope();
        var reference = torch.ones(4);
        // 5e-6 of an atol 1e-5 (half used) vs 1e-7 of an exact bound (failed)
        var loop = TensorComparison.Of("xs", reference + 5e-6f, reference, ParityTolerance.SchedulerLoop);
        var steps = TensorComparison.Of("timesteps", reference + 1e-7f, reference, ParityTolerance.Exact);

        var row = ParityRow.From("sampler", [loop, steps]);

        Assert.That(row.Passed, Is.False);
        Assert.That(row.Tolerance, Is.EqualTo("exact"));
        Assert.That(row.Note, Does.StartWith("worst of 2: timesteps — failed: timesteps (largest difference at [0]"));
    }
}
