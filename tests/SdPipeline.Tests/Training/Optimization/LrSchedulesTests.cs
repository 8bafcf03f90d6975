using SdPipeline.Training;
using SdPipeline.Training.Optimization;

namespace SdPipeline.Tests.Training.Optimization;

/// <summary>Values worked out by hand from transformers' optimization.py formulas.</summary>
public sealed class LrSchedulesTests
{
    [TestCase("constant", 0, 1.0)]
    [TestCase("constant", 99, 1.0)]
    [TestCase("constant_with_warmup", 5, 0.5)]
    [TestCase("constant_with_warmup", 50, 1.0)]
    [TestCase("linear", 5, 0.5)]
    [TestCase("linear", 10, 1.0)]
    [TestCase("linear", 55, 0.5)]   // (100 − 55) / 90
    [TestCase("linear", 100, 0.0)]
    [TestCase("cosine", 10, 1.0)]
    [TestCase("cosine", 55, 0.5)]   // halfway: ½(1 + cos(π/2))
    [TestCase("cosine", 100, 0.0)]
    [TestCase("polynomial", 55, 0.5005)] // (1 − 0.001)·0.5 + 0.001
    [TestCase("polynomial", 100, 0.001)]
    public void Multiplier_Should_FollowTransformersFormulas(string name, long step, double expected)
    {
        Assert.That(LrSchedules.Multiplier(name, step, warmupSteps: 10, totalSteps: 100), Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void CosineWithRestarts_Should_ReturnToTheTop_AtEachRestart()
    {
        // two cycles over 90 post-warm-up steps: restart at step 10 + 45
        Assert.That(LrSchedules.Multiplier("cosine_with_restarts", 54, 10, 100, cycles: 2), Is.LessThan(0.01));
        Assert.That(LrSchedules.Multiplier("cosine_with_restarts", 55, 10, 100, cycles: 2), Is.EqualTo(1.0).Within(1e-12));
    }

    [Test]
    public void Multiplier_Should_NameTheValidSchedules_When_NameIsUnknown()
    {
        var error = Assert.Throws<ArgumentException>(() => LrSchedules.Multiplier("cosin", 0, 0, 10))!;
        Assert.That(error.Message, Does.Contain("cosine_with_restarts"));
    }
}
