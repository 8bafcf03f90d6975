using SdPipeline.Schedulers;
using TorchSharp;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

// The fixtures have no Euler-ancestral loop: its grid is checked against the Euler fixture (diffusers computes both
// the same way) and its step against the formulas, computed independently in float64.
public sealed class EulerAncestralDiscreteSchedulerTests
{
    [TestCase("euler_epsilon_50", 50)]
    [TestCase("euler_epsilon_10", 10)]
    public void SetTimesteps_Should_GiveEulersGrid_When_ConfigIsTheSame(string entry, int steps)
    {
        using var scope = NewDisposeScope();
        using var scheduler = new EulerAncestralDiscreteScheduler(ConfigOf(entry));

        scheduler.SetTimesteps(steps);

        Assert.That(MaxAbsDiff(scheduler.Timesteps, Tensors.Get($"{entry}.timesteps")), Is.LessThanOrEqualTo(FloatTimestepAtol));
        Assert.That(MaxRelDiff(scheduler.Sigmas, Tensors.Get($"{entry}.sigmas")), Is.LessThanOrEqualTo(TableRtol));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(Tensors.Get($"{entry}.init_noise_sigma").item<float>()));
    }

    [TestCase("epsilon")]
    [TestCase("v_prediction")]
    public void Step_Should_FollowTheAncestralFormulas_When_NoiseIsGiven(string predictionType)
    {
        using var scope = NewDisposeScope();
        // Given a 10-step schedule, its second step, and a known noise draw
        using var scheduler = new EulerAncestralDiscreteScheduler(BaseConfig with { PredictionType = predictionType });
        scheduler.SetTimesteps(10);
        var x = Tensors.Get("x_init") * 5;
        var modelOutput = Tensors.Get("ddpm_single.model_output");
        var noise = Tensors.Get("ddpm_single.variance_noise");
        scheduler.Step(modelOutput, scheduler.Timesteps[0], x, noise: noise);

        // When the step is taken
        var output = scheduler.Step(modelOutput, scheduler.Timesteps[1], x, noise: noise);

        // Then x' = x + (x − x̂₀)/σ · (σ_down − σ) + σ_up·z
        double from = scheduler.Sigmas[1].item<float>(), to = scheduler.Sigmas[2].item<float>();
        double up = Math.Sqrt(to * to * (from * from - to * to) / (from * from));
        double down = Math.Sqrt(to * to - up * up);
        var x64 = x.to_type(ScalarType.Float64);
        var m64 = modelOutput.to_type(ScalarType.Float64);
        var denoised = predictionType == "epsilon"
            ? x64 - from * m64
            : m64 * (-from / Math.Sqrt(from * from + 1)) + x64 / (from * from + 1);
        var expected = x64 + (x64 - denoised) / from * (down - from) + noise.to_type(ScalarType.Float64) * up;
        Assert.That(MaxAbsDiff(output.PredOriginalSample!, denoised), Is.LessThanOrEqualTo(1e-5));
        Assert.That(MaxAbsDiff(output.PrevSample, expected), Is.LessThanOrEqualTo(1e-5));
        Assert.That(up, Is.GreaterThan(0.1), "the step adds noise");
    }

    [Test]
    public void Step_Should_DrawFromTheGenerator_When_NoNoiseIsGiven()
    {
        using var scope = NewDisposeScope();
        // Given two schedulers, one drawing from a seeded generator, one given that generator's first draw
        using var seeded = new EulerAncestralDiscreteScheduler(BaseConfig);
        using var given = new EulerAncestralDiscreteScheduler(BaseConfig);
        seeded.SetTimesteps(10);
        given.SetTimesteps(10);
        var x = Tensors.Get("x_init");
        var modelOutput = Tensors.Get("ddpm_single.model_output");
        using var generator = new torch.Generator(42);
        using var sameSeed = new torch.Generator(42);
        var draw = randn(x.shape, generator: sameSeed);

        // When both take the first step
        var fromGenerator = seeded.Step(modelOutput, seeded.Timesteps[0], x, generator).PrevSample;
        var fromNoise = given.Step(modelOutput, given.Timesteps[0], x, noise: draw).PrevSample;

        // Then they agree: the step draws exactly one randn of the sample's shape
        Assert.That(MaxAbsDiff(fromGenerator, fromNoise), Is.EqualTo(0));
    }

    [Test]
    public void Step_Should_LandOnTheDenoisedSample_When_TakingTheLastStep()
    {
        using var scope = NewDisposeScope();
        using var scheduler = new EulerAncestralDiscreteScheduler(BaseConfig);
        scheduler.SetTimesteps(1);
        var x = Tensors.Get("x_init") * scheduler.InitNoiseSigma;

        // When the only step goes to σ = 0, σ_up = σ_down = 0
        var output = scheduler.Step(Tensors.Get("ddpm_single.model_output"), scheduler.Timesteps[0], x, noise: Tensors.Get("ddpm_single.variance_noise"));

        // Then no noise survives and the result is x̂₀
        Assert.That(MaxAbsDiff(output.PrevSample, output.PredOriginalSample!), Is.LessThanOrEqualTo(1e-6));
    }
}
