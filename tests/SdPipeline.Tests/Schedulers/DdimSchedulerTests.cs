using SdPipeline.Schedulers;
using TorchSharp;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class DdimSchedulerTests
{
    [TestCase("ddim_epsilon_50", 50)]
    [TestCase("ddim_epsilon_10", 10)]
    [TestCase("ddim_v_prediction_50", 50)]
    [TestCase("ddim_v_prediction_10", 10)]
    public void Loop_Should_MatchDiffusers_When_SamplingWithTheFakeModel(string entry, int steps)
    {
        using var scope = NewDisposeScope();
        // Given the config diffusers resolved for this loop
        using var scheduler = new DdimScheduler(ConfigOf(entry));

        // When the fixtures' loop runs
        var result = RunLoop(scheduler, steps);

        // Then timesteps are exact and every x is within the loop tolerance
        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(Tensors.Get($"{entry}.timesteps").data<long>().ToArray()));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(Tensors.Get($"{entry}.init_noise_sigma").item<float>()));
        double xs = MaxAbsDiff(result.Xs, Tensors.Get($"{entry}.xs"));
        double outputs = MaxAbsDiff(result.ModelOutputs, Tensors.Get($"{entry}.model_outputs"));
        TestContext.Out.WriteLine($"{entry}: xs max abs diff {xs:E2}, model_outputs {outputs:E2} (atol {LoopAtol:E0})");
        Assert.That(xs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(outputs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(MaxAbsDiff(result.Xs[-1], Tensors.Get($"{entry}.final")), Is.LessThanOrEqualTo(LoopAtol));
    }

    // The generator fed ddim_single the ten stacked model outputs of dpmpp2m_epsilon_10 (not ddpm_single.model_output,
    // as schedulers.json says); the sample is ddpm_single.sample. Reconstructing x₀ from both confirms it.
    [TestCase("epsilon", 981)]
    [TestCase("epsilon", 501)]
    [TestCase("epsilon", 1)]
    [TestCase("v_prediction", 981)]
    [TestCase("v_prediction", 501)]
    [TestCase("v_prediction", 1)]
    public void Step_Should_MatchDiffusers_When_TakingOneStep(string predictionType, int timestep)
    {
        using var scope = NewDisposeScope();
        // Given SD 1.5's DDIM with 50 steps: prev = t − 20, and t = 1 → −19 uses ᾱ₀ (set_alpha_to_one false)
        using var scheduler = new DdimScheduler(BaseConfig with { PredictionType = predictionType });
        scheduler.SetTimesteps(50);

        // When one step is taken
        var output = scheduler.Step(Tensors.Get("dpmpp2m_epsilon_10.model_outputs"), tensor((long)timestep), Tensors.Get("ddpm_single.sample"));

        // Then x_{t-1} and x̂₀ match
        string key = $"ddim_single.{predictionType}.t{timestep}";
        double prev = MaxAbsDiff(output.PrevSample, Tensors.Get($"{key}.prev_sample"));
        double x0 = MaxAbsDiff(output.PredOriginalSample!, Tensors.Get($"{key}.pred_original_sample"));
        TestContext.Out.WriteLine($"{key}: prev_sample max abs diff {prev:E2}, pred_original_sample {x0:E2}");
        Assert.That(prev, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(x0, Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void SetTimesteps_Should_UseLeadingSpacing_When_Sd15ConfigHasNoSpacing()
    {
        // Given SD 1.5's shipped config, which has no timestep_spacing
        using var scheduler = new DdimScheduler(SchedulerConfig.Load(Path.Combine(Support.RepoPaths.Fixtures, "sd15-keys", "scheduler", "scheduler_config.json")));

        // When 5 steps are set (the pipeline fixture's schedule)
        scheduler.SetTimesteps(5);

        // Then DDIM's own default, leading + steps_offset 1, applies
        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(new long[] { 801, 601, 401, 201, 1 }));
    }

    [TestCase("linspace", new long[] { 999, 888, 777, 666, 555, 444, 333, 222, 111, 0 })]
    [TestCase("trailing", new long[] { 999, 899, 799, 699, 599, 499, 399, 299, 199, 99 })]
    public void SetTimesteps_Should_FollowTheSpacing_When_ConfigNamesOne(string spacing, long[] expected)
    {
        using var scheduler = new DdimScheduler(BaseConfig with { TimestepSpacing = spacing });

        scheduler.SetTimesteps(10);

        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(expected));
    }

    [Test]
    public void Step_Should_EqualDdpmPosteriorStep_When_EtaIsOne()
    {
        using var scope = NewDisposeScope();
        // Given DDIM with η = 1 and DDPM over the same 10 leading timesteps (ᾱ = 1 past t = 0 for both)
        var config = BaseConfig with { SetAlphaToOne = true };
        using var ddim = new DdimScheduler(config, eta: 1.0);
        using var ddpm = new DdpmScheduler(config);
        ddim.SetTimesteps(10);
        ddpm.SetTimesteps(10);
        var sample = Tensors.Get("ddpm_single.sample");
        var modelOutput = Tensors.Get("ddpm_single.model_output");
        var noise = Tensors.Get("ddpm_single.variance_noise");

        foreach (long t in new long[] { 901, 501, 101 })
        {
            // When both step with the same noise
            var fromDdim = ddim.Step(modelOutput, tensor(t), sample, noise: noise).PrevSample;
            var fromDdpm = ddpm.Step(modelOutput, tensor(t), sample, noise: noise).PrevSample;

            // Then they agree: DDIM's σ_t(η = 1) is DDPM's posterior standard deviation (DDIM paper, section 4.1)
            Assert.That(MaxAbsDiff(fromDdim, fromDdpm), Is.LessThanOrEqualTo(1e-5), $"t = {t}");
        }
    }

    [Test]
    public void Step_Should_Throw_When_SetTimestepsWasNotCalled()
    {
        using var scope = NewDisposeScope();
        using var scheduler = new DdimScheduler(BaseConfig);

        Assert.Throws<InvalidOperationException>(() => scheduler.Step(zeros(1), tensor(1L), zeros(1)));
    }
}
