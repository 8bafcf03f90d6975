using SdPipeline.Schedulers;
using TorchSharp;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class NoiseScheduleTests
{
    [Test]
    public void Tables_Should_MatchDiffusersFloat32Betas_When_ScheduleIsScaledLinear()
    {
        using var scope = NewDisposeScope();
        // Given SD 1.5's schedule (scaled_linear 0.00085 → 0.012 over 1000 steps)
        using var schedule = new NoiseSchedule(BaseConfig);

        // Then βₜ and ᾱₜ equal diffusers' float32 tables
        double betas = MaxRelDiff(schedule.Betas, Tensors.Get("ddpm.betas"));
        double alphasCumprod = MaxRelDiff(schedule.AlphasCumprod, Tensors.Get("ddpm.alphas_cumprod"));
        TestContext.Out.WriteLine($"betas max rel diff {betas:E2}, alphas_cumprod max rel diff {alphasCumprod:E2} (rtol {TableRtol:E0})");
        Assert.That(schedule.Betas.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(betas, Is.LessThanOrEqualTo(TableRtol));
        Assert.That(alphasCumprod, Is.LessThanOrEqualTo(TableRtol));
    }

    [TestCase("ddim")]
    [TestCase("euler")]
    [TestCase("")]
    public void Constructor_Should_RefuseZeroTerminalSnr_WithoutSuggestingAnotherScheduler(string sampler)
    {
        // Given a zero-terminal-SNR model's scheduler config
        var config = SchedulerConfig.Parse("""{ "beta_schedule": "scaled_linear", "rescale_betas_zero_snr": true }""", "m/scheduler/scheduler_config.json");

        // When training ("") or a sampler builds its tables
        var error = Assert.Throws<SchedulerConfigException>(() =>
        {
            if (sampler.Length == 0) new NoiseSchedule(config).Dispose();
            else SchedulerFactory.Create(sampler, config).Dispose();
        })!;

        // Then the file and key are named, and no sampler is offered as a way round (every one reads the same betas)
        Assert.That(error.Message, Does.StartWith("m/scheduler/scheduler_config.json").And.Contain("rescale_betas_zero_snr = true"));
        Assert.That(error.Message, Does.Not.Contain("another scheduler").And.Not.Contain("any scheduler"));
    }

    [Test]
    public void AddNoise_Should_MatchDiffusers_When_TimestepsSpanTheSchedule()
    {
        using var scope = NewDisposeScope();
        using var schedule = new NoiseSchedule(BaseConfig);

        var noisy = schedule.AddNoise(Tensors.Get("add_noise.x0"), Tensors.Get("add_noise.noise"), Tensors.Get("add_noise.timesteps"));

        double error = MaxAbsDiff(noisy, Tensors.Get("add_noise.noisy"));
        TestContext.Out.WriteLine($"add_noise max abs diff {error:E2}");
        Assert.That(error, Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void GetVelocity_Should_MatchDiffusers_When_TimestepsSpanTheSchedule()
    {
        using var scope = NewDisposeScope();
        using var schedule = new NoiseSchedule(BaseConfig);

        var velocity = schedule.GetVelocity(Tensors.Get("add_noise.x0"), Tensors.Get("add_noise.noise"), Tensors.Get("add_noise.timesteps"));

        double error = MaxAbsDiff(velocity, Tensors.Get("get_velocity.v"));
        TestContext.Out.WriteLine($"get_velocity max abs diff {error:E2}");
        Assert.That(error, Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void ComputeSnr_Should_MatchDiffusersTrainingUtils_When_TimestepsSpanTheSchedule()
    {
        using var scope = NewDisposeScope();
        using var schedule = new NoiseSchedule(BaseConfig);

        var snr = schedule.ComputeSnr(Tensors.Get("add_noise.timesteps"));

        double error = MaxRelDiff(snr, Tensors.Get("compute_snr.snr"));
        TestContext.Out.WriteLine($"compute_snr max rel diff {error:E2} (values 1175 … 0.0047)");
        Assert.That(snr.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(error, Is.LessThanOrEqualTo(TableRtol));
    }

    [Test]
    public void Betas_Should_FollowTheGlideCosine_When_ScheduleIsSquaredcosCapV2()
    {
        using var scope = NewDisposeScope();
        var config = new SchedulerConfig { BetaSchedule = "squaredcos_cap_v2" };

        using var schedule = new NoiseSchedule(config);

        // The product of 1 − βᵢ = ᾱ((i+1)/N) / ᾱ(i/N) telescopes: ᾱₜ = ᾱ((t+1)/N) / ᾱ(0) while no β is capped.
        double AlphaBar(double u) => Math.Pow(Math.Cos((u + 0.008) / 1.008 * Math.PI / 2), 2);
        double expected = AlphaBar(500.0 / 1000) / AlphaBar(0);
        Assert.That(schedule.AlphasCumprod[499].item<float>(), Is.EqualTo(expected).Within(1e-5));
        Assert.That(schedule.Betas[999].item<float>(), Is.EqualTo(0.999f), "the last beta is capped at 0.999");
    }

    [Test]
    public void Betas_Should_BeTheGivenValues_When_TrainedBetasAreSet()
    {
        using var scope = NewDisposeScope();
        var config = new SchedulerConfig { NumTrainTimesteps = 4, TrainedBetas = [0.1, 0.2, 0.3, 0.4], BetaSchedule = "not used" };

        using var schedule = new NoiseSchedule(config);

        Assert.That(schedule.AlphasCumprod.data<float>().ToArray(), Is.EqualTo(new[] { 0.9f, 0.72f, 0.504f, 0.3024f }).Within(1e-6));
    }
}
