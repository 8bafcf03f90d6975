using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using static SdPipeline.Tests.Schedulers.SchedulerFixtures;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

public sealed class PndmSchedulerTests
{
    [TestCase("pndm_epsilon_50", 50)]
    [TestCase("pndm_epsilon_10", 10)]
    public void Loop_Should_MatchDiffusers_When_SamplingWithTheFakeModel(string entry, int steps)
    {
        using var scope = NewDisposeScope();
        using var scheduler = new PndmScheduler(ConfigOf(entry));

        var result = RunLoop(scheduler, steps);

        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(Tensors.Get($"{entry}.timesteps").data<long>().ToArray()));
        Assert.That(scheduler.InitNoiseSigma, Is.EqualTo(Tensors.Get($"{entry}.init_noise_sigma").item<float>()));
        double xs = MaxAbsDiff(result.Xs, Tensors.Get($"{entry}.xs"));
        double outputs = MaxAbsDiff(result.ModelOutputs, Tensors.Get($"{entry}.model_outputs"));
        TestContext.Out.WriteLine($"{entry}: xs max abs diff {xs:E2}, model_outputs {outputs:E2} (atol {LoopAtol:E0})");
        Assert.That(xs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(outputs, Is.LessThanOrEqualTo(LoopAtol));
        Assert.That(MaxAbsDiff(result.Xs[-1], Tensors.Get($"{entry}.final")), Is.LessThanOrEqualTo(LoopAtol));
    }

    [Test]
    public void SetTimesteps_Should_RepeatTheSecondTimestep_When_Sd15ConfigIsUsed()
    {
        // Given SD 1.5's shipped config (PLMS, leading spacing by default, steps_offset 1)
        using var scheduler = new PndmScheduler(SchedulerConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "scheduler", "scheduler_config.json")));

        // When 10 steps are set
        scheduler.SetTimesteps(10);

        // Then the warm-up visits 801 twice: 11 model evaluations
        Assert.That(scheduler.Timesteps.data<long>().ToArray(), Is.EqualTo(new long[] { 901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1 }));
    }

    [Test]
    public void SetTimesteps_Should_RestartTheWarmUp_When_CalledAgain()
    {
        using var scope = NewDisposeScope();
        // Given a scheduler that already ran a loop
        using var scheduler = new PndmScheduler(ConfigOf("pndm_epsilon_10"));
        RunLoop(scheduler, 10);

        // When the same loop runs again
        var again = RunLoop(scheduler, 10);

        // Then its history was reset and the result is the reference again
        Assert.That(MaxAbsDiff(again.Xs, Tensors.Get("pndm_epsilon_10.xs")), Is.LessThanOrEqualTo(LoopAtol));
    }
}
