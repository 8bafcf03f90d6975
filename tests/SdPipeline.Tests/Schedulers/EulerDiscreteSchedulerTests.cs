using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class EulerDiscreteSchedulerTests
{
    [TestCase("euler_epsilon_50", 50)]
    [TestCase("euler_epsilon_10", 10)]
    [TestCase("euler_v_prediction_50", 50)]
    [TestCase("euler_v_prediction_10", 10)]
    public void Loop_Should_MatchDiffusers_When_SamplingWithTheFakeModel(string entry, int steps)
    {
        using var scope = NewDisposeScope();
        using var scheduler = new EulerDiscreteScheduler(ConfigOf(entry));

        var result = RunLoop(scheduler, steps);

        double timesteps = MaxAbsDiff(scheduler.Timesteps, Tensors.Get($"{entry}.timesteps"));
        double sigmas = MaxRelDiff(scheduler.Sigmas, Tensors.Get($"{entry}.sigmas"));
        double xs = MaxAbsDiff(result.Xs, Tensors.Get($"{entry}.xs"));
        double outputs = MaxAbsDiff(result.ModelOutputs, Tensors.Get($"{entry}.model_outputs"));
        TestContext.Out.WriteLine($"{entry}: timesteps max abs diff {timesteps:E2}, sigmas max rel diff {sigmas:E2}, xs max abs diff {xs:E2}, model_outputs {outputs:E2}");
        Assert.That(timesteps, Is.LessThanOrEqualTo(FloatTimestepAtol));
        Assert.That(sigmas, Is.LessThanOrEqualTo(TableRtol));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(Tensors.Get($"{entry}.init_noise_sigma").item<float>()).Within(TableRtol * 15));
        Assert.That(xs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(outputs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(MaxAbsDiff(result.Xs[-1], Tensors.Get($"{entry}.final")), Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void SetTimesteps_Should_UseFractionalLinspace_When_Sd15ConfigHasNoSpacing()
    {
        using var scope = NewDisposeScope();
        // Given SD 1.5's shipped config (no timestep_spacing: Euler's own default, linspace)
        using var scheduler = new EulerDiscreteScheduler(SchedulerConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "scheduler", "scheduler_config.json")));

        // When 50 steps are set
        scheduler.SetTimesteps(50);

        // Then timesteps are the fixture's floats (steps_offset unused) and the initial noise is σ_max
        Assert.That(MaxAbsDiff(scheduler.Timesteps, Tensors.Get("euler_epsilon_50.timesteps")), Is.LessThanOrEqualTo(FloatTimestepAtol));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(14.6146).Within(1e-4));
    }

    [Test]
    public void InitNoiseSigma_Should_IncludeTheUnitVariance_When_SpacingIsLeading()
    {
        // Given Euler with leading spacing
        using var scheduler = new EulerDiscreteScheduler(BaseConfig with { TimestepSpacing = "leading" });

        // When 50 steps are set (981 … 1)
        scheduler.SetTimesteps(50);

        // Then the initial noise is √(σ_max² + 1), σ_max being σ(981)
        double sigmaMax = scheduler.Sigmas[0].item<float>();
        Assert.That(scheduler.Timesteps[0].item<float>(), Is.EqualTo(981f));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(Math.Sqrt(sigmaMax * sigmaMax + 1)).Within(1e-5));
    }

    [Test]
    public void ScaleModelInput_Should_DivideBySqrtOfSigmaSquaredPlusOne_When_AtTheFirstStep()
    {
        using var scope = NewDisposeScope();
        using var scheduler = new EulerDiscreteScheduler(BaseConfig with { TimestepSpacing = "linspace" });
        scheduler.SetTimesteps(10);
        var sample = ones(1, 4, 2, 2);

        var scaled = scheduler.ScaleModelInput(sample, scheduler.Timesteps[0]);

        double sigma = scheduler.Sigmas[0].item<float>();
        Assert.That(scaled.max().item<float>(), Is.EqualTo(1 / Math.Sqrt(sigma * sigma + 1)).Within(1e-6));
        Assert.That(scheduler.Sigmas[-1].item<float>(), Is.EqualTo(0f), "the sigmas end with an appended 0");
    }
}
