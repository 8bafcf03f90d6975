using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Cli;

/// <summary>sdpipe as a user runs it: a separate process, exit codes, output.</summary>
public sealed class CliTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = new TempFolder();
        // A working directory laid out like the repository: configs/tiny.json and datasets.json.
        _temp.CopyTinyProfile();
    }

    [TearDown]
    public void TearDown() => _temp.Dispose();

    private ProcessResult Sdpipe(params string[] arguments) => CliRunner.Sdpipe(_temp.Path, null, arguments);

    [Test]
    public void UnknownKey_Should_ExitWith2_And_NameTheKey()
    {
        var result = Sdpipe("plan", "--set", "download.cont=5");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("download.cont").And.Contain("download.count"));
    }

    [Test]
    public void Run_Should_SayTheDiskIsFull_WithoutAStackTrace_And_KeepWhatItBuilt()
    {
        // Given a store whose run log cannot grow: a link to /dev/full, whose writes fail with ENOSPC as a full disk's do
        Assume.That(OperatingSystem.IsLinux() && File.Exists("/dev/full"), "needs /dev/full");
        string runLog = _temp.File("artifacts/_shared/runs/runs.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(runLog)!);
        File.CreateSymbolicLink(runLog, "/dev/full");

        var result = Sdpipe("run", "download", "--set", "download.count=8");

        // Then it fails (1) naming the file and the full disk, as an error to act on rather than a crash
        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Error, Does.Contain(runLog).And.Contain("the disk is full"));
        Assert.That(result.Error, Does.Not.Contain("   at "));
        // And the artifact it had finished stays a cache hit
        Assert.That(Sdpipe("path", "download", "items.jsonl", "--set", "download.count=8").ExitCode, Is.EqualTo(0));
    }

    [Test]
    public void WronglyTypedSet_Should_ExitWith2_And_NameTheKey()
    {
        var result = Sdpipe("run", "download", "--set", "download.min_side=big");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("download.min_side").And.Contain("integer"));
    }

    [Test]
    public void UnknownDevice_Should_ExitWith2_NamingTheOptionAsTyped()
    {
        var result = Sdpipe("plan", "--device", "gpu");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("'gpu'").And.Contain("cuda").And.Not.Contain("--set"));
    }

    [Test]
    public void UnknownOption_Should_ExitWith2()
    {
        var result = Sdpipe("plan", "--no-such-option");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
    }

    [Test]
    public void Help_Should_BeAvailableOnEveryVerb()
    {
        foreach (string verb in new[] { "plan", "run", "gc", "config", "doctor" })
        {
            var result = Sdpipe(verb, "--help");
            Assert.That(result.ExitCode, Is.EqualTo(0), verb);
            Assert.That(result.Output, Does.Contain("Usage:"), verb);
        }
    }

    [Test]
    public void Plan_Should_ExplainWhatBecameStale_When_AKeyChanges()
    {
        // Given the download stage built with the default config
        Assert.That(Sdpipe("run", "download", "--set", "download.count=16").ExitCode, Is.EqualTo(0));

        // When the plan is asked about a changed count
        var result = Sdpipe("plan", "--set", "download.count=32");

        // Then it says which key changed, from what to what
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("download: stale — download.count changed 16 → 32"));
        Assert.That(Sdpipe("plan", "--set", "download.count=16").Output, Does.Contain("download: cached"));
    }

    [Test]
    public void PlanJson_And_GithubOutput_Should_CarryEveryStageFingerprint()
    {
        string outputFile = _temp.File("github_output");
        var result = Sdpipe("plan", "--json", "--github-output", outputFile);

        var plan = JArray.Parse(result.Output);
        Assert.That(plan.Select(p => p["stage"]!.ToString()), Is.EqualTo(new[] { "model", "download", "latents", "train", "sample", "report" }));
        var lines = File.ReadAllLines(outputFile);
        foreach (var stage in plan)
            Assert.That(lines, Does.Contain($"{stage["stage"]}_fingerprint={stage["fingerprint"]}"));
    }

    [Test]
    public void Plan_Should_WarnOfWhatALaterStageWillRefuse_BeforeAnythingRuns()
    {
        // Given a config the sample stage refuses (no seeds), which `sdpipe run sample` would say only after training
        var result = Sdpipe("plan", "--set", "sample.seeds=[]");

        // Then the plan already says so, on stderr beside the plan, and in its JSON
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Error, Does.Contain("warning: sample will refuse this config: sample.seeds is empty"));
        var json = JArray.Parse(Sdpipe("plan", "--json", "--set", "sample.seeds=[]").Output);
        Assert.That(json.Single(p => p["stage"]!.ToString() == "sample")["refuses"]!.Values<string>(), Has.Some.Contains("sample.seeds is empty"));
        Assert.That(json.Single(p => p["stage"]!.ToString() == "train")["refuses"], Is.Empty);
    }

    [Test]
    public void TwoConcurrentRuns_Should_ProduceOneValidArtifact()
    {
        // Given two processes asked to build the same artifact at the same moment
        var first = CliRunner.SdpipeAsync(_temp.Path, null, "run", "download");
        var second = CliRunner.SdpipeAsync(_temp.Path, null, "run", "download");
        var results = new[] { first.Result, second.Result };

        // Then both succeed, exactly one built it, and the store holds one complete artifact and no leftovers
        Assert.That(results.Select(r => r.ExitCode), Is.All.EqualTo(0), string.Join("\n", results.Select(r => r.All)));
        Assert.That(results.Count(r => r.Output.Contains("download: built")), Is.EqualTo(1));
        Assert.That(results.Count(r => r.Output.Contains("download: cached")), Is.EqualTo(1));
        var folders = Directory.GetDirectories(_temp.File("artifacts/download"));
        Assert.That(folders.Select(Path.GetFileName), Has.Exactly(1).Not.StartsWith("."));
        Assert.That(folders, Has.None.EndsWith(".partial"));
        Assert.That(File.Exists(Path.Combine(folders.Single(f => !Path.GetFileName(f).StartsWith('.')), "manifest.json")), Is.True);
    }

    [Test]
    public void Gc_Should_RemoveUnreferencedArtifacts_And_KeepTheCurrentOne()
    {
        Sdpipe("run", "download", "--set", "download.count=8");
        Sdpipe("run", "download", "--set", "download.count=16");

        var dry = Sdpipe("gc", "--dry-run", "--set", "download.count=16");
        Assert.That(dry.Output, Does.Contain("would remove"));
        Assert.That(Directory.GetDirectories(_temp.File("artifacts/download")).Count(d => !Path.GetFileName(d).StartsWith('.')), Is.EqualTo(2));

        var real = Sdpipe("gc", "--set", "download.count=16");
        Assert.That(real.ExitCode, Is.EqualTo(0), real.All);
        Assert.That(Sdpipe("plan", "--set", "download.count=16").Output, Does.Contain("download: cached"));
        Assert.That(Sdpipe("plan", "--set", "download.count=8").Output, Does.Contain("download: stale"));
    }

    [Test]
    public void Doctor_Should_ReportTorchVersionDeviceAndThreads_FromARealOperation()
    {
        var result = Sdpipe("doctor");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("libtorch:        2.").And.Contain("device:          cpu").And.Contain("threads:").And.Contain("result correct"));
        Assert.That(result.Output, Does.Contain("CPU:             ").And.Contain("oneDNN:          "));
        Assert.That(result.Output, Does.Match(@"numerics: +\d+ operation configurations of the SD 1\.5 UNet and VAE, forward and backward in float32 against float64: "));
    }

    [Test]
    public void Doctor_Should_SayWhoseKernelRulesRun_AsRuntimeKernelsAsks()
    {
        var auto = Sdpipe("doctor");
        var intel = Sdpipe("doctor", "--set", "runtime.kernels=intel");

        Assert.That(auto.ExitCode, Is.EqualTo(0), auto.All);
        Assert.That(intel.ExitCode, Is.EqualTo(0), intel.All);
        Assert.That(auto.Output, Does.Match(@"kernels: +(AMD's|Intel's) rules, this CPU's"));
        Assert.That(intel.Output, Does.Match(@"kernels: +Intel's rules").And.Contain("GEMM:            MKL\n"),
            "Intel's rules leave libtorch's GEMM calls to MKL on any CPU");
    }

    [Test]
    public void Sdpipe_Should_RunUnderTcmalloc_When_ItIsInstalled_And_OnGlibcWhenAskedTo()
    {
        // tcmalloc is one of the tests' prerequisites (.ci/test-prerequisites.sh installs libtcmalloc-minimal4)
        Assert.That(SdPipeline.Runtime.NativeAllocator.Installed, Is.Not.Null,
            "libtcmalloc-minimal4 is not installed: run .ci/test-prerequisites.sh (or apt-get install libtcmalloc-minimal4)");

        // When sdpipe starts, and when it starts with SDPIPE_ALLOCATOR=system
        var tcmalloc = Sdpipe("doctor");
        var system = CliRunner.Sdpipe(_temp.Path, new Dictionary<string, string> { [SdPipeline.Runtime.NativeAllocator.Variable] = "system" }, "doctor");

        // Then the first replaced itself with itself under tcmalloc (the library is mapped into the process doctor
        // runs in) and worked; the second kept glibc's allocator and says why
        Assert.That(tcmalloc.ExitCode, Is.EqualTo(0), tcmalloc.All);
        Assert.That(tcmalloc.Output, Does.Match(@"allocator: +tcmalloc \(/\S*libtcmalloc_minimal\.so\.4"));
        Assert.That(tcmalloc.Output, Does.Contain("result correct"));
        Assert.That(system.ExitCode, Is.EqualTo(0), system.All);
        Assert.That(system.Output, Does.Contain("allocator:       glibc malloc (SDPIPE_ALLOCATOR=system)"));
    }

    [Test]
    public void Doctor_Should_NameTheWrongKernel_And_ShowTheWorkaround_When_AFaultIsInjected()
    {
        var result = CliRunner.Sdpipe(_temp.Path, new Dictionary<string, string> { ["SDPIPE_INJECT_FAULT"] = SdPipeline.Numerics.FaultInjection.ConvolutionInputGradient }, "doctor");

        Assert.That(result.Output, Does.Contain("WRONG").And.Contain("  wrong: conv2d 320→4 k3 s1 p1 (float32): grad input off by"), "the SD 1.5 UNet's conv_out");
        Assert.That(result.Output, Does.Contain("  wrong: conv2d 128→3 k3 s1 p1"), "the SD 1.5 VAE decoder's conv_out");
        Assert.That(result.Output, Does.Contain("with oneDNN off: all right — training turns oneDNN off by itself"));
        Assert.That(result.ExitCode, Is.EqualTo(0), "a wrong kernel with a working workaround is not a broken machine");
    }
}
