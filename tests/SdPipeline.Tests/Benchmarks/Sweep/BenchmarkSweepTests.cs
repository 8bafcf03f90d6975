using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Benchmarks.Sweep;

/// <summary>The sweep's cells as the config defines them, and what a cell's fingerprint depends on.</summary>
public sealed class BenchmarkSweepTests
{
    private static EffectiveConfig Config(params string[] sets) =>
        ConfigLoader.Load(null, [$"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", .. sets]);

    [Test]
    public void Cells_Should_BeTheDefaultMatrix_When_TheConfigHasNoBenchmarkSection()
    {
        var cells = BenchmarkSweep.Cells(Config());

        // 3 precisions × 2 checkpointing × 2 resolutions × 2 methods, the baseline first, precision outermost, method innermost
        Assert.That(cells.Select(c => c.Id), Is.EqualTo(new[]
        {
            "no-off-full", "no-off-full-lora", "no-off-half", "no-off-half-lora", "no-on-full", "no-on-full-lora", "no-on-half", "no-on-half-lora",
            "bf16-off-full", "bf16-off-full-lora", "bf16-off-half", "bf16-off-half-lora", "bf16-on-full", "bf16-on-full-lora", "bf16-on-half", "bf16-on-half-lora",
            "fp16-off-full", "fp16-off-full-lora", "fp16-off-half", "fp16-off-half-lora", "fp16-on-full", "fp16-on-full-lora", "fp16-on-half", "fp16-on-half-lora",
        }));
        Assert.That(cells[0].IsBaseline, Is.True);
    }

    [Test]
    public void Cells_Should_FollowTheBenchmarkSection_When_ItNarrowsTheMatrix()
    {
        var cells = BenchmarkSweep.Cells(Config("benchmark.mixed_precision=bf16,no", "benchmark.gradient_checkpointing=true", "benchmark.resolution=half", "benchmark.method=full"));

        Assert.That(cells.Select(c => c.Id), Is.EqualTo(new[] { "bf16-on-half", "no-on-half" }));
    }

    [TestCase("benchmark.mixed_precision=[]")]
    [TestCase("benchmark.resolution=[]")]
    [TestCase("benchmark.method=[]")]
    [TestCase("benchmark.timed_steps=0")]
    public void Cells_Should_Refuse_When_TheSweepIsEmpty(string set)
    {
        Assert.Throws<ConfigException>(() => BenchmarkSweep.Cells(Config(set)));
    }

    [Test]
    public void Config_Should_Refuse_When_APrecisionIsUnknown()
    {
        var error = Assert.Throws<ConfigException>(() => Config("benchmark.mixed_precision=no,fp8"));
        Assert.That(error!.Message, Does.Contain("fp8").And.Contain("bf16"));
    }

    [Test]
    public void Find_Should_Refuse_When_TheCellIsNotInTheSweep()
    {
        var error = Assert.Throws<ConfigException>(() => BenchmarkSweep.Find(Config("benchmark.resolution=full"), "no-off-half"));
        Assert.That(error!.Message, Does.Contain("no-off-full").And.Contain("benchmark.resolution"));
    }

    [Test]
    public void CellConfig_Should_ApplyTheCellAndTheStepCounts_And_LeaveTheProfileAlone()
    {
        // Given a profile training at 512 px, batch 8, in fp32 with checkpointing off
        var config = Config("latents.resolution=512", "train.train_batch_size=8", "benchmark.warmup_steps=1", "benchmark.timed_steps=4", "benchmark.batch_size=2");

        // When the fp16, checkpointed, half-resolution cell is configured
        var cell = BenchmarkSweep.CellConfig(config, BenchmarkCell.Parse("fp16-on-half"));

        // Then it trains 1 + 4 steps of batch 2 at 256 px in fp16 with checkpointing, without held-out evaluations
        var train = cell.Typed.Train;
        Assert.That((train.MixedPrecision, train.GradientCheckpointing, train.MaxTrainSteps, train.TrainBatchSize, train.HeldoutMaxItems),
            Is.EqualTo(("fp16", true, 5, 2, 0)));
        Assert.That(cell.Typed.Latents.Resolution, Is.EqualTo(256));
        Assert.That(cell.Json["train"]!["mixed_precision"]!.ToString(), Is.EqualTo("fp16"), "the JSON view agrees with the typed one");
        Assert.That(config.Typed.Train.MixedPrecision, Is.EqualTo("no"));
        Assert.That(config.Typed.Latents.Resolution, Is.EqualTo(512));
    }

    [Test]
    public void CellConfig_Should_KeepTheTrainBatchSize_When_TheBenchmarkBatchSizeIs0()
    {
        var cell = BenchmarkSweep.CellConfig(Config("train.train_batch_size=8"), BenchmarkCell.Baseline);

        Assert.That(cell.Typed.Train.TrainBatchSize, Is.EqualTo(8));
    }

    [Test]
    public void Fingerprint_Should_ChangeWithTheCellAndItsSteps_But_NotWithTheSweepsOtherCellsOrItsTimeout()
    {
        // Given a store and the baseline's fingerprint under the default benchmark settings
        using var temp = new TempFolder();
        var store = new ArtifactStore(temp.File("artifacts"));
        string Fingerprint(string id, params string[] sets) =>
            BenchmarkSweep.Plan(Config(sets), BenchmarkCell.Parse(id), store, new FileHashCache(null)).Fingerprint!;
        string baseline = Fingerprint("no-off-full");

        // Then another cell, more timed steps or another learning rate change it; the sweep's lists and the timeout do not
        Assert.That(Fingerprint("no-on-full"), Is.Not.EqualTo(baseline));
        Assert.That(Fingerprint("no-off-full", "benchmark.timed_steps=9"), Is.Not.EqualTo(baseline));
        Assert.That(Fingerprint("no-off-full", "train.learning_rate=0.5"), Is.Not.EqualTo(baseline));
        Assert.That(Fingerprint("no-off-full", "benchmark.mixed_precision=no"), Is.EqualTo(baseline));
        Assert.That(Fingerprint("no-off-full", "benchmark.cell_timeout_seconds=5"), Is.EqualTo(baseline));
        Assert.That(Fingerprint("no-off-full", "train.checkpointing_steps=7"), Is.EqualTo(baseline));
    }

    [TestCase("train.max_train_steps=5000")]
    [TestCase("train.validation_steps=7")]
    [TestCase("train.heldout_max_items=3")]
    [TestCase("train.checkpointing_steps=9")]
    [TestCase("benchmark.cell_timeout_seconds=5")]
    public void ConfigHash_Should_NotChange_When_TheSettingIsOneNoCellReads(string set)
    {
        // Every cell sets its own step count and turns evaluations and checkpoints off, and the timeout changes no
        // measurement: a sweep made before the run trained longer (or with a longer timeout) is still this config's
        Assert.That(BenchmarkSweep.ConfigHash(Config(set)), Is.EqualTo(BenchmarkSweep.ConfigHash(Config())));
    }

    [Test]
    public void ConfigHash_Should_FollowTheTrainBatchSize_Only_When_TheBenchmarkHasNoBatchSizeOfItsOwn()
    {
        Assert.That(BenchmarkSweep.ConfigHash(Config("train.train_batch_size=3")), Is.Not.EqualTo(BenchmarkSweep.ConfigHash(Config())));
        Assert.That(BenchmarkSweep.ConfigHash(Config("benchmark.batch_size=4", "train.train_batch_size=3")),
            Is.EqualTo(BenchmarkSweep.ConfigHash(Config("benchmark.batch_size=4"))));
    }

    [TestCase("train.fused_backward_pass=true")]
    [TestCase("runtime.kernels=off")]
    [TestCase("runtime.onednn=off")]
    public void Fingerprint_And_ConfigHash_Should_Change_When_ASettingChangesWhatACellMeasures(string set)
    {
        // Given a store and the baseline's fingerprint and the sweep's hash under the default settings
        using var temp = new TempFolder();
        var store = new ArtifactStore(temp.File("artifacts"));
        string Fingerprint(params string[] sets) =>
            BenchmarkSweep.Plan(Config(sets), BenchmarkCell.Baseline, store, new FileHashCache(null)).Fingerprint!;

        // Then a setting that changes the step's time or memory (the fused backward pass frees each gradient in
        // backward; the kernels and oneDNN choose the convolutions) is a new measurement, and a sweep made without it
        // is not the current config's in the report
        Assert.That(Fingerprint(set), Is.Not.EqualTo(Fingerprint()));
        Assert.That(BenchmarkSweep.ConfigHash(Config(set)), Is.Not.EqualTo(BenchmarkSweep.ConfigHash(Config())));
    }

    [Test]
    public void Plan_Should_NameTheLatentCacheOfTheCellsResolution_When_ItIsNotBuilt()
    {
        using var temp = new TempFolder();
        var store = new ArtifactStore(temp.File("artifacts"));
        var plan = BenchmarkSweep.Plan(Config("latents.resolution=64"), BenchmarkCell.Parse("no-off-half"), store, new FileHashCache(null));

        var error = Assert.Throws<StageFailedException>(() => plan.UpstreamDirectories());
        Assert.That(error!.Message, Does.Contain("32 px").And.Contain("sdpipe benchmark --prepare"));
        Assert.That(plan.Missing.Select(p => p.Stage.Name), Is.EquivalentTo(new[] { "model", "download", "latents" }));
    }

    [Test]
    public void ConfigHash_Should_ChangeWithWhatTheSweepReads_Only()
    {
        string hash = BenchmarkSweep.ConfigHash(Config());

        Assert.That(BenchmarkSweep.ConfigHash(Config("benchmark.timed_steps=9")), Is.Not.EqualTo(hash));
        Assert.That(BenchmarkSweep.ConfigHash(Config("train.learning_rate=0.5")), Is.Not.EqualTo(hash));
        Assert.That(BenchmarkSweep.ConfigHash(Config("sample.steps=3")), Is.EqualTo(hash));
        // The swept keys are set by each cell: a LoRA run's report shows the sweep a full run made.
        Assert.That(BenchmarkSweep.ConfigHash(Config("train.method=lora")), Is.EqualTo(hash));
        Assert.That(BenchmarkSweep.ConfigHash(Config("train.mixed_precision=bf16")), Is.EqualTo(hash));
    }
}
