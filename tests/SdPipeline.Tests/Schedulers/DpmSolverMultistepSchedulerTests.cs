using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class DpmSolverMultistepSchedulerTests
{
    [TestCase("dpmpp2m_epsilon_50", 50)]
    [TestCase("dpmpp2m_epsilon_10", 10)]
    public void Loop_Should_MatchDiffusers_When_SamplingWithTheFakeModel(string entry, int steps)
    {
        using var scope = NewDisposeScope();
        using var scheduler = new DpmSolverMultistepScheduler(ConfigOf(entry));

        var result = RunLoop(scheduler, steps);

        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(Tensors.Get($"{entry}.timesteps").data<long>().ToArray()));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(Tensors.Get($"{entry}.init_noise_sigma").item<float>()));
        double sigmas = MaxRelDiff(scheduler.Sigmas, Tensors.Get($"{entry}.sigmas"));
        double xs = MaxAbsDiff(result.Xs, Tensors.Get($"{entry}.xs"));
        double outputs = MaxAbsDiff(result.ModelOutputs, Tensors.Get($"{entry}.model_outputs"));
        TestContext.Out.WriteLine($"{entry}: sigmas max rel diff {sigmas:E2}, xs max abs diff {xs:E2}, model_outputs {outputs:E2}");
        Assert.That(sigmas, Is.LessThanOrEqualTo(TableRtol));
        Assert.That(xs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(outputs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(MaxAbsDiff(result.Xs[-1], Tensors.Get($"{entry}.final")), Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void SetTimesteps_Should_UseRoundedLinspace_When_Sd15ConfigHasNoSpacing()
    {
        // Given SD 1.5's shipped config (no timestep_spacing: DPM-Solver's default, linspace; steps_offset unused)
        using var scheduler = new DpmSolverMultistepScheduler(SchedulerConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "scheduler", "scheduler_config.json")));

        scheduler.SetTimesteps(10);

        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(new long[] { 999, 899, 799, 699, 599, 500, 400, 300, 200, 100 }));
    }

    [Test]
    public void Step_Should_ReturnTheDataPrediction_When_TakingTheLastStepToSigmaZero()
    {
        using var scope = NewDisposeScope();
        // Given a 2-step schedule whose final sigma is 0
        using var scheduler = new DpmSolverMultistepScheduler(BaseConfig);
        scheduler.SetTimesteps(2);
        var x = Tensors.Get("x_init");
        var eps = Tensors.Get("ddpm_single.model_output");
        x = scheduler.Step(eps, scheduler.Timesteps[0], x).PrevSample;

        // When the last step is taken (first order, as final_sigmas_type zero demands)
        var last = scheduler.Step(eps, scheduler.Timesteps[1], x).PrevSample;

        // Then it lands on x̂₀ = (x − σ_t ε) / α_t at the last timestep
        double sigma = scheduler.Sigmas[1].item<float>();
        double alphaT = 1 / Math.Sqrt(sigma * sigma + 1);
        var expected = (x - sigma * alphaT * eps) / alphaT;
        Assert.That(MaxAbsDiff(last, expected), Is.LessThanOrEqualTo(1e-5));
    }

    [Test]
    public void SetTimesteps_Should_StartBelowTheClippedLambdas_When_LambdaMinClippedIsSet()
    {
        // Given λ(t) = log(α_t/σ_t) clipped at 0: the timesteps where ᾱ_t < 1/2 are left out
        using var scheduler = new DpmSolverMultistepScheduler(BaseConfig with { LambdaMinClipped = 0 });
        float[] alphasCumprod = scheduler.Schedule.AlphasCumprod.data<float>().ToArray();
        int firstClipped = Array.FindIndex(alphasCumprod, a => MathF.Log(MathF.Sqrt(a)) - MathF.Log(MathF.Sqrt(1 - a)) < 0);

        // When 10 steps are set
        scheduler.SetTimesteps(10);

        // Then the schedule is linspace(0, firstClipped − 1, 11), rounded, reversed, without its 0
        long[] timesteps = scheduler.Timesteps.data<long>().ToArray();
        Assert.That(firstClipped, Is.InRange(100, 900));
        Assert.That(timesteps[0], Is.EqualTo(firstClipped - 1));
        Assert.That(timesteps[^1], Is.EqualTo((long)Math.Round((firstClipped - 1) / 10.0, MidpointRounding.ToEven)));
    }
}
