using SdPipeline.Schedulers;
using TorchSharp;

namespace SdPipeline.Tests.Schedulers;

public sealed class SchedulerFactoryTests
{
    [TestCase("ddpm", typeof(DdpmScheduler))]
    [TestCase("ddim", typeof(DdimScheduler))]
    [TestCase("pndm", typeof(PndmScheduler))]
    [TestCase("euler", typeof(EulerDiscreteScheduler))]
    [TestCase("euler_ancestral", typeof(EulerAncestralDiscreteScheduler))]
    [TestCase("dpmsolver++", typeof(DpmSolverMultistepScheduler))]
    public void Create_Should_BuildTheNamedScheduler_When_NameIsValid(string name, Type expected)
    {
        using var scheduler = SchedulerFactory.Create(name, SchedulerFixtures.BaseConfig);

        Assert.That(scheduler, Is.TypeOf(expected));
        Assert.That(scheduler.Name, Is.EqualTo(name));
        Assert.That(SchedulerFactory.Names, Does.Contain(name));
    }

    [TestCase("ddpm", true)]
    [TestCase("ddim", false)]
    [TestCase("pndm", false)]
    [TestCase("euler", false)]
    [TestCase("euler_ancestral", true)]
    [TestCase("dpmsolver++", false)]
    public void DrawsNoiseEachStep_Should_SayWhetherStepUsesTheGivenNoise_When_AskedByTheLoop(string name, bool expected)
    {
        // The denoising loop passes seeded noise only to schedulers that say they draw it; one that used noise without
        // saying so would fall back to torch's global generator, and its images would stop depending on their seeds alone.
        using var scheduler = SchedulerFactory.Create(name, SchedulerFixtures.BaseConfig);
        Assert.That(scheduler.DrawsNoiseEachStep, Is.EqualTo(expected));
        Assert.That(StepUsesNoise(scheduler), Is.EqualTo(expected));
    }

    [Test]
    public void DrawsNoiseEachStep_Should_BeTrue_When_DdimHasPositiveEta()
    {
        using var scheduler = new DdimScheduler(SchedulerFixtures.BaseConfig, eta: 0.5);
        Assert.That(scheduler.DrawsNoiseEachStep, Is.True);
        Assert.That(StepUsesNoise(scheduler), Is.True);
    }

    // Whether the first step's result changes with the noise it is given.
    private static bool StepUsesNoise(IScheduler scheduler)
    {
        using var scope = torch.NewDisposeScope();
        scheduler.SetTimesteps(10);
        var t = scheduler.Timesteps[0];
        using var generator = new torch.Generator(7);
        var sample = torch.randn([1, 4, 8, 8], generator: generator);
        var modelOutput = torch.randn([1, 4, 8, 8], generator: generator);
        var first = scheduler.Step(modelOutput, t, sample, noise: torch.zeros_like(sample)).PrevSample;
        scheduler.SetTimesteps(10);
        var second = scheduler.Step(modelOutput, t, sample, noise: torch.ones_like(sample)).PrevSample;
        return !first.allclose(second);
    }

    [Test]
    public void Create_Should_ListValidNames_When_NameIsUnknown()
    {
        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerFactory.Create("k_lms", SchedulerFixtures.BaseConfig))!;

        Assert.That(error.Message, Does.Contain("'k_lms'").And.Contain("ddpm, ddim, pndm, euler, euler_ancestral, dpmsolver++"));
    }

    [Test]
    public void ShippedName_Should_ListValidNames_When_ClassHasNoPort()
    {
        var config = SchedulerConfig.Parse("""{ "_class_name": "LMSDiscreteScheduler" }""", "m/scheduler_config.json");

        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerFactory.ShippedName(config))!;

        Assert.That(error.Message, Does.Contain("LMSDiscreteScheduler").And.Contain("dpmsolver++"));
    }

    [Test]
    public void Create_Should_NameTheKey_When_ConfigSelectsAnUnsupportedFeature()
    {
        var config = SchedulerFixtures.BaseConfig with { UseKarrasSigmas = true };

        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerFactory.Create("euler", config))!;

        Assert.That(error.Message, Does.Contain("use_karras_sigmas = true").And.Contain("euler"));
    }

    [Test]
    public void Create_Should_RefusePndm_When_ConfigWouldUseTheRungeKuttaWarmUp()
    {
        var config = SchedulerConfig.Parse("""{ "beta_schedule": "scaled_linear" }""");

        var error = Assert.Throws<SchedulerConfigException>(() => SchedulerFactory.Create("pndm", config))!;

        Assert.That(error.Message, Does.Contain("skip_prk_steps"));
    }

    [Test]
    public void Create_Should_IgnoreOtherClassesKeys_When_BuildingFromAnotherClassesConfig()
    {
        // Given SD 1.5's PNDM config, which also carries keys Euler does not read (skip_prk_steps, clip_sample, ...)
        var config = SchedulerFixtures.BaseConfig with { VarianceType = "fixed_small", SolverOrder = 3 };

        // When Euler is built from it, as diffusers' EulerDiscreteScheduler.from_config would be
        using var scheduler = SchedulerFactory.Create("euler", config);

        // Then the foreign keys change nothing
        Assert.That(scheduler, Is.TypeOf<EulerDiscreteScheduler>());
    }
}
