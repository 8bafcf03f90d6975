using SdPipeline.Schedulers;
using TorchSharp;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class DdpmSchedulerTests
{
    // The fixture loops step with generator = torch.Generator().manual_seed(304), which TorchSharp reproduces.
    private const int FixtureSeed = 304;

    [TestCase("ddpm_epsilon_10", "epsilon")]
    [TestCase("ddpm_v_prediction_10", "v_prediction")]
    public void Loop_Should_MatchDiffusers_When_StepsDrawFromASeededGenerator(string entry, string predictionType)
    {
        using var scope = NewDisposeScope();
        // Given SD 1.5's config as DDPM (leading spacing, fixed_small) and PyTorch's seed
        using var scheduler = new DdpmScheduler(BaseConfig with { PredictionType = predictionType });
        using var generator = new torch.Generator(FixtureSeed);

        // When the loop runs, each step drawing its noise from the generator
        var result = RunLoop(scheduler, 10, generator);

        // Then it reproduces diffusers' samples, noise included
        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(Tensors.Get($"{entry}.timesteps").data<long>().ToArray()));
        double xs = MaxAbsDiff(result.Xs, Tensors.Get($"{entry}.xs"));
        double outputs = MaxAbsDiff(result.ModelOutputs, Tensors.Get($"{entry}.model_outputs"));
        TestContext.Out.WriteLine($"{entry}: xs max abs diff {xs:E2}, model_outputs {outputs:E2} (atol {LoopAtol:E0})");
        Assert.That(xs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(outputs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(MaxAbsDiff(result.Xs[-1], Tensors.Get($"{entry}.final")), Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void Generator_Should_DrawTheFixturesVarianceNoise_When_SeededLikeDiffusers()
    {
        using var scope = NewDisposeScope();
        using var generator = new torch.Generator(FixtureSeed);

        // Every timestep of the 10-step loop is > 0, so each step draws one randn of the sample's shape.
        var draws = stack(Enumerable.Range(0, 10).Select(_ => randn(new long[] { 1, 4, 8, 8 }, generator: generator)).ToArray());

        Assert.That(MaxAbsDiff(draws, Tensors.Get("ddpm_epsilon_10.variance_noise")), Is.EqualTo(0));
    }

    [TestCase("epsilon", 999)]
    [TestCase("epsilon", 500)]
    [TestCase("epsilon", 0)]
    [TestCase("v_prediction", 999)]
    [TestCase("v_prediction", 500)]
    [TestCase("v_prediction", 0)]
    public void Step_Should_MatchDiffusers_When_NoTimestepsWereSet(string predictionType, int timestep)
    {
        using var scope = NewDisposeScope();
        // Given a fresh DDPM scheduler (previous timestep = t − 1, the training chain)
        using var scheduler = new DdpmScheduler(BaseConfig with { PredictionType = predictionType });

        // When one step is taken with the recorded noise (no draw at t = 0)
        var output = scheduler.Step(Tensors.Get("ddpm_single.model_output"), tensor((long)timestep), Tensors.Get("ddpm_single.sample"),
            noise: timestep > 0 ? Tensors.Get("ddpm_single.variance_noise") : null);

        // Then x_{t-1} and x̂₀ match
        string key = $"ddpm_single.{predictionType}.t{timestep}";
        double prev = MaxAbsDiff(output.PrevSample, Tensors.Get($"{key}.prev_sample"));
        double x0 = MaxAbsDiff(output.PredOriginalSample!, Tensors.Get($"{key}.pred_original_sample"));
        TestContext.Out.WriteLine($"{key}: prev_sample max abs diff {prev:E2}, pred_original_sample {x0:E2}");
        Assert.That(prev, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(x0, Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void SetTimesteps_Should_Refuse_When_LeadingSpacingWithOffsetLeavesTheTable()
    {
        // Given SD 1.5's config (leading, steps_offset 1)
        using var scheduler = new DdpmScheduler(BaseConfig);

        // When every training step is asked for, timesteps would run 1000 … 1 and 1000 has no ᾱ
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(1000))!;

        Assert.That(error.Message, Does.Contain("timestep 1000").And.Contain("0 … 999"));
    }

    [Test]
    public void Step_Should_Refuse_When_BothGeneratorAndNoiseAreGiven()
    {
        using var scope = NewDisposeScope();
        using var scheduler = new DdpmScheduler(BaseConfig);
        using var generator = new torch.Generator(1);

        Assert.Throws<ArgumentException>(() => scheduler.Step(zeros(1, 4, 8, 8), tensor(10L), zeros(1, 4, 8, 8), generator, zeros(1, 4, 8, 8)));
    }
}
