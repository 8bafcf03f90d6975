using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Cli;

/// <summary>
/// <c>sdpipe gc --max-size / --older-than</c> as the workflows run it at the end of a job on a self-hosted runner:
/// the store stays bounded, and the current config's artifacts always survive.
/// </summary>
public sealed class GcTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        _temp.CopyTinyProfile();
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private ProcessResult Sdpipe(params string[] arguments) => CliRunner.Sdpipe(_temp.Path, null, arguments);

    /// <summary>Builds the download stage for <paramref name="count"/> items and returns its artifact folder.</summary>
    private string BuildDownload(int count)
    {
        var result = Sdpipe("run", "download", "--set", $"download.count={count}");
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        var path = Sdpipe("path", "download", "--set", $"download.count={count}");
        Assert.That(path.ExitCode, Is.EqualTo(0), path.All);
        return path.Output.Trim();
    }

    /// <summary>Makes an artifact look last built <paramref name="daysAgo"/> days ago (manifest and run log agree).</summary>
    private void LastUsed(string artifact, double daysAgo)
    {
        var when = DateTime.UtcNow.AddDays(-daysAgo);
        string manifestPath = Path.Combine(artifact, "manifest.json");
        var manifest = JObject.Parse(File.ReadAllText(manifestPath));
        manifest["started_at"] = when;
        manifest["finished_at"] = when;
        File.WriteAllText(manifestPath, manifest.ToString());

        string runLog = _temp.File("artifacts/_shared/runs/runs.jsonl");
        string fingerprint = manifest.Value<string>("fingerprint")!;
        var lines = File.ReadAllLines(runLog).Select(line =>
        {
            var entry = JObject.Parse(line);
            if (entry.Value<string>("fingerprint") == fingerprint) entry["time"] = when;
            return entry.ToString(Newtonsoft.Json.Formatting.None);
        });
        File.WriteAllLines(runLog, lines.ToList());
    }

    private static long StoreSize(string root) =>
        new DirectoryInfo(root).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint })
            .Sum(f => f.Length);

    [Test]
    public void OlderThan_Should_RemoveUnreferencedArtifactsLastUsedBeforeTheLimit_Only()
    {
        // Given three download artifacts: an old one, a recent one, and the current config's (also old)
        string old = BuildDownload(8), recent = BuildDownload(12), current = BuildDownload(16);
        LastUsed(old, daysAgo: 40);
        LastUsed(recent, daysAgo: 5);
        LastUsed(current, daysAgo: 90);

        // When gc runs with a 30-day limit for the config that uses count=16
        var result = Sdpipe("gc", "--older-than", "30", "--set", "download.count=16");

        // Then only the old, unreferenced one is gone
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(old), Is.False, result.Output);
        Assert.That(Directory.Exists(recent), Is.True, result.Output);
        Assert.That(Directory.Exists(current), Is.True, result.Output);
        Assert.That(result.Output, Does.Contain("more than 30 days ago"));
        Assert.That(Sdpipe("plan", "--set", "download.count=16").Output, Does.Contain("download: cached"));
    }

    [Test]
    public void OlderThan_Should_KeepAnArtifact_When_ARunFoundItCachedRecently()
    {
        // Given an artifact built long ago but found cached by a run today
        string artifact = BuildDownload(8);
        BuildDownload(16);
        LastUsed(artifact, daysAgo: 40);
        Assert.That(Sdpipe("run", "download", "--set", "download.count=8").Output, Does.Contain("download: cached"));

        // When gc runs with a 30-day limit for another config
        var result = Sdpipe("gc", "--older-than", "30", "--set", "download.count=16");

        // Then it is still there: "last used" is the run log's, not only the build time
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(artifact), Is.True, result.Output);
    }

    [Test]
    public void MaxSize_Should_RemoveTheLeastRecentlyUsedFirst_And_NeverTheCurrentConfigs()
    {
        // Given three artifacts; the current config's is the least recently used of all
        string current = BuildDownload(8), older = BuildDownload(12), newer = BuildDownload(16);
        LastUsed(current, daysAgo: 30);
        LastUsed(older, daysAgo: 20);
        LastUsed(newer, daysAgo: 10);
        long size = StoreSize(_temp.File("artifacts"));

        // When the store must shrink by one byte
        var result = Sdpipe("gc", "--max-size", (size - 1).ToString(), "--set", "download.count=8");

        // Then the least recently used artifact that is not the current config's goes, and only it
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(current), Is.True, result.Output);
        Assert.That(Directory.Exists(older), Is.False, result.Output);
        Assert.That(Directory.Exists(newer), Is.True, result.Output);
        Assert.That(StoreSize(_temp.File("artifacts")), Is.LessThanOrEqualTo(size - 1));
        Assert.That(result.Output, Does.Contain("least recently used"));
    }

    [Test]
    public void MaxSize_Should_KeepTheCurrentConfig_And_Warn_When_ItAloneIsOverTheLimit()
    {
        // Given two artifacts
        string current = BuildDownload(8), other = BuildDownload(16);

        // When the limit is smaller than the current config's artifact
        var result = Sdpipe("gc", "--max-size", "1K", "--set", "download.count=8");

        // Then everything else goes, the current one stays, and the user is told why the store is still over
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(other), Is.False, result.Output);
        Assert.That(Directory.Exists(current), Is.True, result.Output);
        Assert.That(result.Error, Does.Contain("over --max-size").And.Contain("current config"));
    }

    [Test]
    public void OlderThan_Should_RemoveOldPartialBuilds_But_NotTheCurrentConfigsInterruptedBuild()
    {
        // Given the store of one config, an old interrupted build of another, and an old interrupted build of the current one
        string current = BuildDownload(8);
        string stageDir = Path.GetDirectoryName(current)!;
        string currentPartial = Path.Combine(stageDir, $".{Path.GetFileName(current)}.partial");
        string otherPartial = Path.Combine(stageDir, ".0123456789abcdef.partial");
        foreach (string partial in new[] { currentPartial, otherPartial })
        {
            Directory.CreateDirectory(partial);
            // The marker an interrupted build of that fingerprint leaves, by which gc knows it made the folder.
            string shortFp = Path.GetFileName(partial).Split('.')[1];
            File.WriteAllText(Path.Combine(partial, ".sdpipe-partial"),
                new JObject { ["stage"] = "download", ["fingerprint"] = shortFp + new string('0', 48), ["upstream"] = new JObject() }.ToString());
            File.SetLastWriteTimeUtc(Path.Combine(partial, ".sdpipe-partial"), DateTime.UtcNow.AddDays(-60));
            File.WriteAllText(Path.Combine(partial, "shard-000.bin"), "interrupted");
            File.SetLastWriteTimeUtc(Path.Combine(partial, "shard-000.bin"), DateTime.UtcNow.AddDays(-60));
            Directory.SetLastWriteTimeUtc(partial, DateTime.UtcNow.AddDays(-60));
        }

        // When gc runs with a 30-day limit
        var result = Sdpipe("gc", "--older-than", "30", "--set", "download.count=8");

        // Then the other config's leftover goes; the current config's stays, so its next run resumes from it
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(otherPartial), Is.False, result.Output);
        Assert.That(Directory.Exists(currentPartial), Is.True, result.Output);
    }

    [Test]
    public void OlderThan_Should_RemoveDatasetDownloads_NotReadOrWrittenWithinTheLimit()
    {
        // Given two cached downloads, one untouched for 60 days and one used yesterday
        BuildDownload(8);
        string downloads = _temp.File("artifacts/_shared/downloads/url");
        string old = Path.Combine(downloads, "aaaaaaaaaaaaaaaa"), fresh = Path.Combine(downloads, "bbbbbbbbbbbbbbbb");
        foreach (var (folder, daysAgo) in new[] { (old, 60), (fresh, 1) })
        {
            Directory.CreateDirectory(folder);
            string file = Path.Combine(folder, "dataset.zip");
            File.WriteAllBytes(file, new byte[4096]);
            File.SetLastWriteTimeUtc(file, DateTime.UtcNow.AddDays(-daysAgo));
            File.SetLastAccessTimeUtc(file, DateTime.UtcNow.AddDays(-daysAgo));
            Directory.SetLastWriteTimeUtc(folder, DateTime.UtcNow.AddDays(-daysAgo));
        }

        // When gc runs with a 30-day limit
        var result = Sdpipe("gc", "--older-than", "30", "--set", "download.count=8");

        // Then the stale download is gone and the recent one stays
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(old), Is.False, result.Output);
        Assert.That(Directory.Exists(fresh), Is.True, result.Output);
    }

    [Test]
    public void DryRun_Should_ListButRemoveNothing_When_LimitsAreGiven()
    {
        // Given an old unreferenced artifact
        string old = BuildDownload(8);
        BuildDownload(16);
        LastUsed(old, daysAgo: 40);

        // When gc is asked for a dry run
        var result = Sdpipe("gc", "--dry-run", "--older-than", "30", "--max-size", "1K", "--set", "download.count=16");

        // Then it says what it would remove, and the folder is still there
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("would remove").And.Contain(Path.GetFileName(old)));
        Assert.That(Directory.Exists(old), Is.True);
    }

    [TestCase("--max-size", "50X")]
    [TestCase("--max-size", "lots")]
    [TestCase("--older-than", "-1")]
    public void BadLimit_Should_ExitWith2_And_NameTheOption(string option, string value)
    {
        var result = Sdpipe("gc", option, value);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain(option));
    }
}
