using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Reporting;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Benchmarks.Sweep;

/// <summary><c>sdpipe benchmark --merge</c> on cell artifacts written by hand into a store.</summary>
public sealed class SweepMergerTests
{
    private TempFolder _temp = null!;
    private ArtifactStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        _store = new ArtifactStore(_temp.File("artifacts"));
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private static EffectiveConfig Config(params string[] sets) =>
        ConfigLoader.Load(null, [$"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "latents.resolution=64", .. sets]);

    // A cell artifact as `sdpipe benchmark --cell` leaves it, with a made-up result.
    private void Store(EffectiveConfig config, CellResult result)
    {
        var plan = BenchmarkSweep.Plan(config, BenchmarkCell.Parse(result.Id), _store, new FileHashCache(null));
        _store.Build(plan.Inputs!, plan.Config.Json, (folder, _) =>
        {
            result.Write(folder);
            return new JObject();
        });
    }

    [Test]
    public void Merge_Should_TabulateTheCellsInTheStore_And_MarkTheRestNotRun()
    {
        // Given results for the baseline and the checkpointed cell only
        var config = Config();
        Store(config, SweepResultTests.Result("no-off-full", seconds: 2.0, peak: 1000));
        Store(config, SweepResultTests.Result("no-on-full", seconds: 3.0, peak: 800));

        // When they are merged
        var result = SweepMerger.Merge(config, _store, new FileHashCache(null));

        // Then both are rows with their changes, and the other 22 cells are not run
        var rows = result.Cells.ToDictionary(r => r.Id);
        Assert.That(rows, Has.Count.EqualTo(24));
        Assert.That(rows["no-on-full"].TimeChange, Is.EqualTo(0.5).Within(1e-12));
        Assert.That(rows["no-on-full"].MemoryChange, Is.EqualTo(-0.2).Within(1e-12));
        Assert.That(result.Cells.Count(r => r.Status == SweepRow.NotRun), Is.EqualTo(22));
        Assert.That(result.ConfigHash, Is.EqualTo(BenchmarkSweep.ConfigHash(config)));
    }

    [Test]
    public void Merge_Should_IgnoreResultsOfOtherSettings()
    {
        // Given a baseline measured with 5 timed steps
        Store(Config(), SweepResultTests.Result("no-off-full", seconds: 2.0, peak: 1000));

        // When the config asks for 9
        var result = SweepMerger.Merge(Config("benchmark.timed_steps=9"), _store, new FileHashCache(null));

        // Then that result is not this sweep's
        Assert.That(result.Cells.Select(r => r.Status), Is.All.EqualTo(SweepRow.NotRun));
    }

    [Test]
    public void Merge_Should_UseTheResultsOfTheSameSettings_When_TheModelIsNotOnThisMachine()
    {
        // Given results built with builtin:tiny, merged where the model folder the config names does not exist
        Store(Config(), SweepResultTests.Result("no-off-full", seconds: 2.0, peak: 1000));
        var elsewhere = Config($"model.base={_temp.File("no-such-model")}");

        // When merged (a CI job that only merges the runners' cells has no model)
        var result = SweepMerger.Merge(elsewhere, _store, new FileHashCache(null));

        // Then the result with the same cell settings is found
        Assert.That(result.Cells[0].Status, Is.EqualTo(CellResult.Ok));
    }

    [Test]
    public void Write_Should_WriteTheJsonAndMarkdown_TheSameEachTime()
    {
        var config = Config();
        Store(config, SweepResultTests.Result("no-off-full", seconds: 2.0, peak: 1000));

        string path = SweepMerger.Write(SweepMerger.Merge(config, _store, new FileHashCache(null)), _store);
        string first = File.ReadAllText(path);
        SweepMerger.Write(SweepMerger.Merge(config, _store, new FileHashCache(null)), _store);

        Assert.That(path, Is.EqualTo(Path.Combine(_store.Root, "benchmark", "benchmark.json")));
        Assert.That(File.ReadAllText(path), Is.EqualTo(first));
        Assert.That(File.ReadAllText(Path.Combine(_store.Root, "benchmark", "benchmark.md")), Does.Contain("| no-off-full (baseline) |"));
    }

    [Test]
    public void ReportInputs_Should_IncludeTheMergedResult_OnlyWhenItIsTheCurrentConfigs()
    {
        // Given no merged result, then one merged for this config
        var config = Config();
        var context = new StageInputContext(config, new FileHashCache(null), _store);
        var before = ReportStage.ExternalInputs(context);
        Store(config, SweepResultTests.Result("no-off-full", seconds: 2.0, peak: 1000));
        SweepMerger.Write(SweepMerger.Merge(config, _store, new FileHashCache(null)), _store);

        // Then the report's inputs gain its hash (a new merge makes the report stale), for this config only
        var after = ReportStage.ExternalInputs(context);
        Assert.That(before, Does.Not.ContainKey("benchmark"));
        Assert.That(after["benchmark"], Is.EqualTo(FileHashCache.HashFile(BenchmarkSweep.ResultPath(_store))));
        var other = ReportStage.ExternalInputs(new StageInputContext(Config("benchmark.timed_steps=9"), new FileHashCache(null), _store));
        Assert.That(other, Does.Not.ContainKey("benchmark"));
    }
}
