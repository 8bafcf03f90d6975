using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Pipeline;

/// <summary>The cache rules every stage relies on, on a small graph with stand-in stages (no tensors).</summary>
public sealed class StageEngineTests
{
    // a ← download.count; b ← a + download.min_side; c ← b; d ← model.base (independent)
    private static readonly StageGraph Graph = new(
    [
        new StageDefinition("a", "A", 1, ["download.count"], [], "first"),
        new StageDefinition("b", "B", 1, ["download.min_side"], ["a"], "second"),
        new StageDefinition("c", "C", 1, [], ["b"], "third"),
        new StageDefinition("d", "D", 1, ["model.base"], [], "independent"),
    ]);

    private sealed class WriteConfigRunner(List<string> built) : IStageRunner
    {
        public JObject Run(StageWorkspace workspace)
        {
            lock (built) built.Add(workspace.Stage.Name);
            File.WriteAllText(Path.Combine(workspace.Directory, "out.txt"), workspace.Config.Json.ToString());
            return new JObject { ["ok"] = true };
        }
    }

    private sealed class Harness : IDisposable
    {
        private readonly TempFolder _temp = new();
        public List<string> Built { get; } = [];
        public ArtifactStore Store { get; }
        public FileHashCache Hashes { get; } = new(null);

        public Harness() => Store = new ArtifactStore(_temp.File("artifacts"));

        public IReadOnlyList<StagePlan> Plan(params string[] sets) =>
            new Planner(Graph, Store, Hashes).Plan(ConfigLoader.Load(null, sets));

        public void RunAll(params string[] sets)
        {
            var executor = new StageExecutor(Graph, Store, Hashes, _ => new WriteConfigRunner(Built));
            foreach (var stage in Graph.Stages)
                executor.Run(stage.Name, ConfigLoader.Load(null, sets), force: false, _ => { }, NullProgress.Instance, CancellationToken.None);
        }

        public static Dictionary<string, StageStatus> Statuses(IEnumerable<StagePlan> plans) => plans.ToDictionary(p => p.Stage.Name, p => p.Status);

        public void Dispose() => _temp.Dispose();
    }

    [Test]
    public void ChangingAKey_Should_MakeItsStageAndDownstreamStale_And_NothingElse()
    {
        // Given every stage built
        using var harness = new Harness();
        harness.RunAll();

        // When download.min_side (read by b) changes
        var plans = harness.Plan("download.min_side=40");

        // Then b and c are stale, a and d are cached
        Assert.That(Harness.Statuses(plans), Is.EqualTo(new Dictionary<string, StageStatus>
        {
            ["a"] = StageStatus.Cached, ["b"] = StageStatus.Stale, ["c"] = StageStatus.Stale, ["d"] = StageStatus.Cached,
        }));
        var b = plans.Single(p => p.Stage.Name == "b");
        var c = plans.Single(p => p.Stage.Name == "c");
        Assert.That(b.Reasons, Is.EqualTo(new[] { "download.min_side changed 32 → 40" }));
        Assert.That(c.Reasons.Single(), Does.StartWith("upstream b is stale (download.min_side changed 32 → 40)"));
    }

    [Test]
    public void ChangingAKeyBack_Should_BeACacheHit_When_ItsArtifactsStillExist()
    {
        using var harness = new Harness();
        harness.RunAll();
        harness.RunAll("download.min_side=40");
        harness.Built.Clear();

        // When the config goes back to the first one
        harness.RunAll();

        // Then nothing is rebuilt: every stage finds its earlier artifact
        Assert.That(harness.Built, Is.Empty);
        Assert.That(harness.Plan().All(p => p.Status == StageStatus.Cached), Is.True);
    }

    [Test]
    public void Rerun_Should_BuildNothing_When_EverythingIsCached()
    {
        using var harness = new Harness();
        harness.RunAll();
        Assert.That(harness.Built, Is.EqualTo(new[] { "a", "b", "c", "d" }));
        harness.Built.Clear();

        harness.RunAll();

        Assert.That(harness.Built, Is.Empty);
    }

    [Test]
    public void FolderWithoutManifest_Should_NotBeACacheHit()
    {
        using var harness = new Harness();
        harness.RunAll();
        var a = harness.Plan().Single(p => p.Stage.Name == "a");
        File.Delete(Path.Combine(a.ArtifactDirectory!, Manifest.FileName));

        var again = harness.Plan().Single(p => p.Stage.Name == "a");

        Assert.That(again.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(again.Reasons.Single(), Does.Contain("no readable manifest"));
    }

    [Test]
    public void FileWithChangedSize_Should_NotBeACacheHit()
    {
        using var harness = new Harness();
        harness.RunAll();
        var a = harness.Plan().Single(p => p.Stage.Name == "a");
        File.AppendAllText(Path.Combine(a.ArtifactDirectory!, "out.txt"), "tampered");

        var again = harness.Plan().Single(p => p.Stage.Name == "a");

        Assert.That(again.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(again.Reasons.Single(), Does.Contain("out.txt changed size"));
    }

    [Test]
    public void Verify_Should_CatchSameSizeEdits_When_SizeCheckCannot()
    {
        using var harness = new Harness();
        harness.RunAll();
        var a = harness.Plan().Single(p => p.Stage.Name == "a");
        string file = Path.Combine(a.ArtifactDirectory!, "out.txt");
        var bytes = File.ReadAllBytes(file);
        bytes[0] ^= 1;
        File.WriteAllBytes(file, bytes);

        var quick = new Planner(Graph, harness.Store, harness.Hashes).Plan(ConfigLoader.Load(null)).Single(p => p.Stage.Name == "a");
        var verified = new Planner(Graph, harness.Store, harness.Hashes).Plan(ConfigLoader.Load(null), verify: true).Single(p => p.Stage.Name == "a");

        Assert.That(quick.Status, Is.EqualTo(StageStatus.Cached));
        Assert.That(verified.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(verified.Reasons.Single(), Does.Contain("SHA-256 mismatch"));
    }

    [Test]
    public void Manifest_Should_ListEveryFileWithSizeAndHash_And_TheEffectiveConfig()
    {
        using var harness = new Harness();
        harness.RunAll("download.count=7");
        var a = harness.Plan("download.count=7").Single(p => p.Stage.Name == "a");

        var manifest = Manifest.TryRead(Path.Combine(a.ArtifactDirectory!, Manifest.FileName))!;

        Assert.That(manifest.Fingerprint, Is.EqualTo(a.Fingerprint));
        Assert.That(manifest.Files.Select(f => f.Path), Is.EqualTo(new[] { "out.txt" }));
        Assert.That(manifest.Files[0].Size, Is.EqualTo(new FileInfo(Path.Combine(a.ArtifactDirectory!, "out.txt")).Length));
        Assert.That(manifest.Files[0].Sha256, Is.EqualTo(FileHashCache.HashFile(Path.Combine(a.ArtifactDirectory!, "out.txt"))));
        Assert.That(manifest.EffectiveConfig["download"]!["count"]!.Value<int>(), Is.EqualTo(7));
        Assert.That(manifest.FingerprintInputs["config"]!["download.count"]!.Value<int>(), Is.EqualTo(7));
        Assert.That(Directory.GetDirectories(harness.Store.StageDirectory("a")).Select(Path.GetFileName), Has.None.EndsWith(".partial"));
    }

    [Test]
    public void FailedBuild_Should_LeaveNoArtifact_And_TheNextRunResumes()
    {
        using var harness = new Harness();
        var config = ConfigLoader.Load(null);
        var executor = new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new FailingRunner());

        Assert.Throws<StageFailedException>(() => executor.Run("a", config, false, _ => { }, NullProgress.Instance, CancellationToken.None));
        var plan = harness.Plan().Single(p => p.Stage.Name == "a");
        Assert.That(plan.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(Directory.Exists(plan.ArtifactDirectory), Is.False);

        var resumed = new List<bool>();
        var second = new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new RecordingRunner(resumed));
        second.Run("a", config, false, _ => { }, NullProgress.Instance, CancellationToken.None);
        Assert.That(resumed, Is.EqualTo(new[] { true }));
    }

    [Test]
    public void ResumedBuild_Should_DropTheHalfWrittenFilesOfTheKilledOne()
    {
        // Given a build killed in the middle of an atomic write (its temporary sibling left behind, in a subfolder)
        using var harness = new Harness();
        var config = ConfigLoader.Load(null);
        Assert.Throws<StageFailedException>(() =>
            new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new FailingRunner()).Run("a", config, false, _ => { }, NullProgress.Instance, CancellationToken.None));
        string partial = Directory.GetDirectories(harness.Store.StageDirectory("a"), ".*.partial").Single();
        Directory.CreateDirectory(Path.Combine(partial, "unet"));
        string leftover = Path.Combine(partial, "unet", $"diffusion_pytorch_model.safetensors.tmp-4242-{Guid.NewGuid():N}");
        File.WriteAllText(leftover, "half a file");

        // When the next run resumes it
        var outcome = new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new RecordingRunner([])).Run("a", config, false, _ => { }, NullProgress.Instance, CancellationToken.None);

        // Then the artifact holds what the builds wrote, and not the half file
        Assert.That(outcome.Manifest.Files.Select(f => f.Path), Is.EqualTo(new[] { "half.txt" }));
        Assert.That(Directory.EnumerateFiles(outcome.Directory, "*.tmp-*", SearchOption.AllDirectories), Is.Empty);
    }

    [Test]
    public void Run_Should_RefuseToStart_When_UpstreamIsNotBuilt()
    {
        using var harness = new Harness();
        var executor = new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new WriteConfigRunner(harness.Built));

        var error = Assert.Throws<StageInputException>(() =>
            executor.Run("b", ConfigLoader.Load(null), false, _ => { }, NullProgress.Instance, CancellationToken.None))!;

        Assert.That(error.Message, Does.Contain("needs stage 'a'"));
        Assert.That(error.ExitCode, Is.EqualTo(2), "a usage error: README's exit codes");
        Assert.That(harness.Built, Is.Empty);
    }

    [Test]
    public void Gc_Should_KeepEveryArtifactOfAChainInProgress_When_ItRunsWithAnotherConfig()
    {
        // Given one config built, and another config's chain under way: a built, b built, c building, and its d
        // interrupted in an earlier run (the chain resumes it after c)
        using var harness = new Harness();
        harness.RunAll();
        string[] sets = ["download.count=5", "model.base=hf:org/other"];
        var other = ConfigLoader.Load(null, sets);
        Assert.Throws<StageFailedException>(() => new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new FailingRunner())
            .Run("d", other, false, _ => { }, NullProgress.Instance, CancellationToken.None));
        var executor = new StageExecutor(Graph, harness.Store, harness.Hashes, _ => new WriteConfigRunner(harness.Built));
        executor.Run("a", other, false, _ => { }, NullProgress.Instance, CancellationToken.None);
        executor.Run("b", other, false, _ => { }, NullProgress.Instance, CancellationToken.None);
        string otherA = harness.Plan(sets).Single(p => p.Stage.Name == "a").ArtifactDirectory!;
        string otherD = harness.Plan(sets).Single(p => p.Stage.Name == "d").ArtifactDirectory!;
        string interruptedD = Path.Combine(Path.GetDirectoryName(otherD)!, $".{Path.GetFileName(otherD)}.partial");
        Assert.That(Directory.Exists(interruptedD), Is.True);

        // When gc runs with the first config while the other chain's stage c builds (a process of its own in a chain)
        GcResult? during = null;
        var collecting = new StageExecutor(Graph, harness.Store, harness.Hashes,
            _ => new CallbackRunner(() => during = new GarbageCollector(harness.Store).Collect(harness.Plan(), new GcLimits(), dryRun: false)));
        collecting.Run("c", other, false, _ => { }, NullProgress.Instance, CancellationToken.None);

        // Then the running chain's a, which c does not read but the chain built, and its interrupted d are kept, and said why
        Assert.That(Directory.Exists(otherA), Is.True, string.Join("\n", during!.Removed.Select(r => r.Path)));
        Assert.That(Directory.Exists(interruptedD), Is.True, string.Join("\n", during.Removed.Select(r => r.Path)));
        Assert.That(during.Kept, Has.Some.Contains($"a/{Path.GetFileName(otherA)} belongs to the config of a running sdpipe (process {Environment.ProcessId})"));

        // And once that run has ended, gc removes it (a lease ends with its process)
        var after = new GarbageCollector(harness.Store).Collect(harness.Plan(), new GcLimits(), dryRun: false);
        Assert.That(after.Removed.Select(r => r.Path), Does.Contain(otherA).And.Contain(interruptedD));
        Assert.That(Directory.EnumerateFileSystemEntries(harness.Store.SharedDirectory("leases")), Is.Empty);
    }

    [Test]
    public void Gc_Should_IgnoreTheLeaseOfAKilledRun()
    {
        // Given the lease of an sdpipe killed while it ran another config (its list left behind, its lock released by the OS)
        using var harness = new Harness();
        harness.RunAll("download.count=5");
        harness.RunAll();
        string otherA = harness.Plan("download.count=5").Single(p => p.Stage.Name == "a").ArtifactDirectory!;
        string leases = harness.Store.SharedDirectory("leases");
        Directory.CreateDirectory(leases);
        File.WriteAllText(Path.Combine(leases, $"999999-{Guid.NewGuid():N}.json"), $$"""{"pid": 999999, "folders": ["a/{{Path.GetFileName(otherA)}}"]}""");

        // When gc runs
        var result = new GarbageCollector(harness.Store).Collect(harness.Plan(), new GcLimits(), dryRun: false);

        // Then the dead run protects nothing, and its list is gone
        Assert.That(result.Removed.Select(r => r.Path), Does.Contain(otherA));
        Assert.That(Directory.EnumerateFileSystemEntries(leases), Is.Empty);
    }

    private sealed class CallbackRunner(Action during) : IStageRunner
    {
        public JObject Run(StageWorkspace workspace)
        {
            during();
            return new JObject();
        }
    }

    private sealed class FailingRunner : IStageRunner
    {
        public JObject Run(StageWorkspace workspace)
        {
            File.WriteAllText(Path.Combine(workspace.Directory, "half.txt"), "half");
            throw new StageFailedException("boom");
        }
    }

    private sealed class RecordingRunner(List<bool> resumed) : IStageRunner
    {
        public JObject Run(StageWorkspace workspace)
        {
            resumed.Add(workspace.Resuming);
            return new JObject();
        }
    }
}
