using Newtonsoft.Json.Linq;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Cli;

/// <summary>
/// <c>sdpipe gc</c> removes only what sdpipe made: a folder someone else put in the store, a link, a folder
/// that is not a store at all, a build whose identity is unknown and what a running build reads all survive.
/// </summary>
public sealed class GcSafetyTests
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

    private string BuildDownload(int count)
    {
        var result = Sdpipe("run", "download", "--set", $"download.count={count}");
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        return Sdpipe("path", "download", "--set", $"download.count={count}").Output.Trim();
    }

    private static string Plant(string folder)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "precious.txt"), "not sdpipe's");
        return folder;
    }

    /// <summary>The marker <see cref="ArtifactStore.Build"/> writes into a build folder.</summary>
    private static void WriteBuildMarker(string partial, string stage, string shortFingerprint, JObject upstream) =>
        File.WriteAllText(Path.Combine(partial, StoreMarkers.PartialFileName),
            new JObject { ["stage"] = stage, ["fingerprint"] = shortFingerprint + new string('0', 48), ["upstream"] = upstream }.ToString());

    [Test]
    public void Run_Should_MarkTheStore()
    {
        BuildDownload(8);

        Assert.That(File.Exists(_temp.File($"artifacts/{StoreMarkers.StoreFileName}")), Is.True);
    }

    [Test]
    public void Gc_Should_Exit2AndTouchNothing_When_TheFolderIsNotAStore()
    {
        // Given --artifacts pointing at a folder of someone else's, laid out like stage folders
        string home = _temp.File("home");
        string notes = Plant(Path.Combine(home, "download", "notes"));
        string project = Plant(Path.Combine(home, "train", "0123456789abcdef"));

        var result = Sdpipe("gc", "--artifacts", home);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain(home).And.Contain("is not an sdpipe artifact store"));
        Assert.That(File.Exists(Path.Combine(notes, "precious.txt")) && File.Exists(Path.Combine(project, "precious.txt")), Is.True);
    }

    [Test]
    public void Gc_Should_RemoveOnlyWhatItRecognises_When_OthersFoldersShareAStageFolder()
    {
        // Given two artifacts, and folders sdpipe did not make beside them (one named like an artifact, one like a build)
        string old = BuildDownload(8);
        string current = BuildDownload(16);
        string stageDir = Path.GetDirectoryName(current)!;
        string[] foreign =
        [
            Plant(Path.Combine(stageDir, "my-notes")),
            Plant(Path.Combine(stageDir, ".git")),
            Plant(Path.Combine(stageDir, "0123456789abcdef")),
            Plant(Path.Combine(stageDir, ".fedcba9876543210.partial")),
        ];

        var result = Sdpipe("gc", "--set", "download.count=16");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(old), Is.False, result.Output);
        Assert.That(Directory.Exists(current), Is.True, result.Output);
        foreach (string folder in foreign)
            Assert.That(File.Exists(Path.Combine(folder, "precious.txt")), Is.True, $"{folder} was removed:\n{result.Output}");
        Assert.That(result.Output, Does.Contain("my-notes was not made by sdpipe"));
    }

    [Test]
    public void Gc_Should_NotFollowALinkedStageFolder()
    {
        // Given the download stage's folder moved elsewhere and linked back into the store
        string old = BuildDownload(8);
        BuildDownload(16);
        string elsewhere = _temp.File("elsewhere");
        Directory.Move(_temp.File("artifacts/download"), elsewhere);
        Directory.CreateSymbolicLink(_temp.File("artifacts/download"), elsewhere);

        var result = Sdpipe("gc", "--set", "download.count=16");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(Path.Combine(elsewhere, Path.GetFileName(old))), Is.True, result.Output);
        Assert.That(result.Output, Does.Contain("download/ is a link"));
    }

    [Test]
    public void Gc_Should_KeepEveryBuildOfAStage_When_ItsFingerprintCannotBeResolved()
    {
        // Given an interrupted build of the download stage
        BuildDownload(8);
        string stageDir = _temp.File("artifacts/download");
        string partial = Path.Combine(stageDir, ".00000000aaaaaaaa.partial");
        Directory.CreateDirectory(partial);
        WriteBuildMarker(partial, "download", "00000000aaaaaaaa", new JObject());

        // When gc runs with a config whose dataset cannot be resolved (so which build is current is unknown)
        var result = Sdpipe("gc", "--set", "download.dataset=no-such-dataset");

        Assert.That(Directory.Exists(partial), Is.True, result.All);
        Assert.That(result.All, Does.Contain("no-such-dataset"));
    }

    [Test]
    public void Gc_Should_KeepTheUpstreamArtifactOfARunningBuild()
    {
        // Given a latents build in progress (its lock held) reading the count=8 download artifact
        string upstream = BuildDownload(8);
        BuildDownload(16);
        string fingerprint = JObject.Parse(File.ReadAllText(Path.Combine(upstream, "manifest.json"))).Value<string>("fingerprint")!;
        string latents = _temp.File("artifacts/latents");
        string partial = Path.Combine(latents, ".aaaaaaaaaaaaaaaa.partial");
        Directory.CreateDirectory(partial);
        WriteBuildMarker(partial, "latents", "aaaaaaaaaaaaaaaa", new JObject { ["download"] = fingerprint });
        using var running = FileLock.Acquire(Path.Combine(latents, ".aaaaaaaaaaaaaaaa.lock"), TimeSpan.Zero);

        // When gc runs for another config
        var result = Sdpipe("gc", "--set", "download.count=16");

        // Then neither the running build nor what it reads is removed
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(Directory.Exists(upstream), Is.True, result.Output);
        Assert.That(Directory.Exists(partial), Is.True, result.Output);
        Assert.That(result.Output, Does.Contain("is read by a running build"));
    }

    [TestCase("1e7")]
    [TestCase("Infinity")]
    public void Gc_Should_Exit2_When_OlderThanIsBeyondACentury(string days)
    {
        var result = Sdpipe("gc", "--older-than", days);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("--older-than").And.Contain("0 to 36500"));
        Assert.That(result.Error, Does.Not.Contain("   at "));
    }
}
