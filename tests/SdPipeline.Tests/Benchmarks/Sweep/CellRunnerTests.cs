using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Reporting;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Benchmarks.Sweep;

/// <summary>A real benchmark cell on builtin:tiny: the train stage's loop, measured, cached, merged and reported.</summary>
public sealed class CellRunnerTests
{
    private static readonly string[] Sets =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0",
        "download.count=16", "latents.resolution=64", "latents.center_crop=true", "train.train_batch_size=4", "train.max_train_steps=2",
        "train.lr_warmup_steps=0", "train.heldout_max_items=4", "benchmark.warmup_steps=1", "benchmark.timed_steps=2",
        """sample.prompts=["a red circle on a blue background"]""", "sample.seeds=0", "sample.steps=2", "sample.sampler=ddim",
    ];

    [Test]
    public void Cell_Should_MeasureItsTimedSteps_BeCachedTheSecondTime_And_AppearInTheReport()
    {
        // Given the model, dataset and latent cache of a small run
        using var harness = new PipelineHarness();
        harness.RunChain(["model", "download", "latents"], Sets);
        var config = PipelineHarness.Config(Sets);
        CellPlan Plan() => BenchmarkSweep.Plan(config, BenchmarkCell.Baseline, harness.Store, new FileHashCache(null));

        // When the baseline cell runs (1 warm-up step and 2 timed ones)
        var outcome = CellRunner.Run(Plan(), false, harness.Log.Add, NullProgress.Instance, CancellationToken.None);

        // Then its artifact holds the measurement of the timed steps, the training metrics and the pre-flight estimate, not the model
        Assert.That(outcome.CacheHit, Is.False);
        var result = CellResult.Read(outcome.Directory);
        Assert.That(result.Status, Is.EqualTo(CellResult.Ok), result.Error);
        Assert.That((result.Id, result.ResolutionPixels, result.BatchSize, result.WarmupSteps, result.TimedSteps), Is.EqualTo(("no-off-full", 64, 4, 1, 2)));
        Assert.That(result.StepSeconds, Has.Count.EqualTo(2).And.All.GreaterThan(0));
        Assert.That(result.MedianStepSeconds, Is.EqualTo(result.StepSeconds.Average()).Within(1e-9));
        Assert.That(result.ImagesPerSecond, Is.EqualTo(4 / result.MedianStepSeconds!.Value).Within(0.01));
        Assert.That(result.PeakMemoryBytes, Is.GreaterThan(100L << 20));
        Assert.That(result.EstimateBytes, Is.GreaterThan(0));
        Assert.That(double.IsFinite(result.FinalLoss!.Value), Is.True);
        var trainSteps = File.ReadLines(Path.Combine(outcome.Directory, FineTuner.MetricsFile)).Select(JObject.Parse).Where(l => l.Value<string>("kind") == "train");
        Assert.That(trainSteps.Count(), Is.EqualTo(3));
        Assert.That(File.Exists(Path.Combine(outcome.Directory, "preflight.json")), Is.True);
        Assert.That(Directory.Exists(Path.Combine(outcome.Directory, CellRunner.ScratchFolder)), Is.False);

        // When it is asked for again
        var again = CellRunner.Run(Plan(), false, harness.Log.Add, NullProgress.Instance, CancellationToken.None);

        // Then it is a cache hit
        Assert.That(again.CacheHit, Is.True);
        Assert.That(again.Directory, Is.EqualTo(outcome.Directory));

        // When the sweep is merged and the chain's report is written
        SweepMerger.Write(SweepMerger.Merge(config, harness.Store, new FileHashCache(null)), harness.Store);
        var report = harness.RunChain(["train", "sample", "report"], Sets);

        // Then the report shows the table
        string markdown = File.ReadAllText(Path.Combine(report.Directory, ReportWriter.MarkdownFileName));
        Assert.That(markdown, Does.Contain("## Benchmark").And.Contain("no-off-full (baseline)").And.Contain("not run"));
    }

    [Test]
    public void RecordFailure_Should_CacheTheFailureAsARow()
    {
        // Given a cell whose process died (nothing of the upstream is built: a failure needs none of it)
        using var harness = new PipelineHarness();
        var plan = BenchmarkSweep.Plan(PipelineHarness.Config(Sets), BenchmarkCell.Parse("fp16-on-half"), harness.Store, new FileHashCache(null));

        // When the sweep records it as timed out
        var outcome = CellRunner.RecordFailure(plan, CellResult.Timeout, "stopped after benchmark.cell_timeout_seconds = 60 s", 60);

        // Then the cell has a result: the timeout, with the limit it hit
        Assert.That(plan.Check().IsValid, Is.True);
        var result = CellResult.Read(outcome.Directory);
        Assert.That((result.Status, result.TimeoutSeconds, result.MedianStepSeconds), Is.EqualTo((CellResult.Timeout, (int?)60, (double?)null)));
    }

    [TestCase(false, 1, "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 4096 bytes", CellResult.OutOfMemory)]
    [TestCase(false, 137, "", CellResult.OutOfMemory)]
    [TestCase(false, 1, "error: NullReferenceException", CellResult.Failed)]
    [TestCase(true, 137, "", CellResult.Timeout)]
    public void Classify_Should_NameWhyACellProcessEnded(bool timedOut, int exitCode, string lastLine, string expected)
    {
        var (status, error) = SweepRunner.Classify(new ChildOutcome(exitCode, timedOut, ["train steps: 1 / 7", lastLine]), 60);

        Assert.That(status, Is.EqualTo(expected));
        Assert.That(error, Is.Not.Empty);
    }
}
