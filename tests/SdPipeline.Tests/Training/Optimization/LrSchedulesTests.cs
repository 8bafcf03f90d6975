using SdPipeline.Config;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Training.Optimization;

namespace SdPipeline.Tests.Training.Optimization;

/// <summary>Values worked out by hand from diffusers' optimization.py formulas, as its get_scheduler calls them.</summary>
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
    public void Multiplier_Should_FollowDiffusersFormulas(string name, long step, double expected)
    {
        Assert.That(LrSchedules.Multiplier(name, step, warmupSteps: 10, totalSteps: 100, endRatio: 0.001), Is.EqualTo(expected).Within(1e-12));
    }

    [Test]
    public void Cosine_Should_DecayOnceToZero_WhateverTheRestartCount()
    {
        // get_scheduler passes num_cycles to cosine_with_restarts only: cosine keeps its 0.5, one half-wave.
        foreach (double restarts in new[] { 0.5, 1, 3 })
        {
            Assert.That(LrSchedules.Multiplier("cosine", 32, 10, 100, restarts: restarts), Is.EqualTo(0.5 * (1 + Math.Cos(Math.PI * 22 / 90))).Within(1e-12));
            Assert.That(LrSchedules.Multiplier("cosine", 99, 10, 100, restarts: restarts), Is.LessThan(0.001));
        }
    }

    [Test]
    public void Polynomial_Should_EndAtDiffusersAbsoluteRate_WhateverTheBaseRate()
    {
        foreach (double baseLr in new[] { 1e-5, 1e-4, 1e-3 })
        {
            double ratio = LrSchedules.PolynomialEndRatio(baseLr);
            Assert.That(baseLr * LrSchedules.Multiplier("polynomial", 100, 10, 100, endRatio: ratio), Is.EqualTo(1e-7).Within(1e-18));
            Assert.That(baseLr * LrSchedules.Multiplier("polynomial", 150, 10, 100, endRatio: ratio), Is.EqualTo(1e-7).Within(1e-18));
        }
    }

    [Test]
    public void CosineWithRestarts_Should_ReturnToTheTop_AtEachRestart()
    {
        // two cycles over 90 post-warm-up steps: restart at step 10 + 45
        Assert.That(LrSchedules.Multiplier("cosine_with_restarts", 54, 10, 100, restarts: 2), Is.LessThan(0.01));
        Assert.That(LrSchedules.Multiplier("cosine_with_restarts", 55, 10, 100, restarts: 2), Is.EqualTo(1.0).Within(1e-12));
    }

    [Test]
    public void Multiplier_Should_NameTheValidSchedules_When_NameIsUnknown()
    {
        var error = Assert.Throws<ArgumentException>(() => LrSchedules.Multiplier("cosin", 0, 0, 10))!;
        Assert.That(error.Message, Does.Contain("cosine_with_restarts"));
    }

    [Test]
    public void TrainStage_Should_RefusePolynomial_When_TheRateIsNotAboveItsEnd()
    {
        static IReadOnlyList<string> Problems(params string[] sets) =>
            TrainStage.CheckConfig(ConfigLoader.Load(null, [$"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "train.lr_scheduler=polynomial", .. sets]));

        Assert.That(Problems("train.learning_rate=1e-6"), Is.Empty);
        Assert.That(Problems("train.learning_rate=1e-7"), Has.One.Contains("train.learning_rate").And.One.Contains("above it (now 1E-07)"));
        // scale_lr raises the rate the schedule starts from, as diffusers' --scale_lr does before get_scheduler
        Assert.That(Problems("train.learning_rate=1e-8", "train.scale_lr=true", "train.train_batch_size=16"), Is.Empty);
    }
}
