using System.Diagnostics;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Hub;

/// <summary>
/// `sdpipe plan` asks the Hub for a model's file hashes when they are not cached. A Hub that accepts the
/// connection and never answers must neither hang the plan nor escape Ctrl+C: the plan says it could not check.
/// </summary>
[NonParallelizable] // sets HF_* environment variables
public sealed class UnansweringHubTests : ServerTest
{
    [SetUp]
    public void SetUp()
    {
        Server.Serve("/api/models/org/sd/revision/main", new TestHttpServer.Route { Body = [], NeverAnswer = true });
    }

    [TearDown]
    public void TearDown()
    {
        foreach (string name in new[] { "HF_ENDPOINT", "HF_HUB_CACHE" })
            Environment.SetEnvironmentVariable(name, null);
    }

    private Dictionary<string, string> Environment_() =>
        new() { ["HF_ENDPOINT"] = Server.BaseUri.ToString(), ["HF_HUB_CACHE"] = Temp.File("hub") };

    [Test]
    public void Plan_Should_SayItCouldNotCheck_When_TheHubNeverAnswers()
    {
        // Given an empty Hub cache and a Hub that never answers
        foreach (var (name, value) in Environment_()) Environment.SetEnvironmentVariable(name, value);
        var config = ConfigLoader.Load(null, ["model.base=hf:org/sd", "download.timeout_seconds=1"]);

        // When every stage is planned
        var store = new ArtifactStore(Temp.File("artifacts"));
        var plans = new Planner(ProjectStages.Graph, store, new FileHashCache(null)).Plan(config);

        // Then the model stage is an error that says the files could not be checked, naming the URL and the setting
        var model = plans.Single(p => p.Stage.Name == "model");
        Assert.That(model.Status, Is.EqualTo(StageStatus.Error));
        Assert.That(model.Reasons.Single(), Does.Contain("could not check its files on the Hub")
            .And.Contain(new Uri(Server.BaseUri, "api/models/org/sd/revision/main").ToString())
            .And.Contain("download.timeout_seconds = 1 s"));
    }

    [Test]
    public void PlanCommand_Should_Exit2SayingItCouldNotCheck_When_TheHubNeverAnswers()
    {
        var result = CliRunner.Sdpipe(RepoPaths.Root, Environment_(), "plan", "--set", "model.base=hf:org/sd", "--set", "download.timeout_seconds=1",
            "--artifacts", Temp.File("artifacts"));

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Output, Does.Contain("model: error").And.Contain("could not check its files on the Hub").And.Contain("download.timeout_seconds = 1 s"));
        Assert.That(result.All, Does.Not.Contain("   at "));
    }

    [Test]
    [Platform(Exclude = "Win")] // sends SIGINT
    public void PlanCommand_Should_StopOnCtrlC_When_TheHubNeverAnswers()
    {
        // Given `sdpipe plan` waiting on a Hub that never answers, with an hour's timeout
        // Through env(1) resetting SIGINT: a test run started in the background by a non-interactive shell (as CI
        // runners may) inherits SIGINT ignored, and an ignored signal stays ignored across exec, so the Ctrl+C below
        // would never reach sdpipe. A user's terminal delivers it.
        var start = new ProcessStartInfo("env")
        {
            WorkingDirectory = RepoPaths.Root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (string argument in new[] { "--default-signal=INT", "dotnet", RepoPaths.CliDll, "plan", "--set", "model.base=hf:org/sd", "--set", "download.timeout_seconds=3600", "--artifacts", Temp.File("artifacts") })
            start.ArgumentList.Add(argument);
        foreach (var (name, value) in Environment_()) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            var waited = Stopwatch.StartNew();
            while (!Server.Requests.Any(r => r.Contains("/revision/main")) && waited.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(50);
            Assert.That(Server.Requests, Has.Some.Contains("/revision/main"), "plan never asked the Hub");

            // When Ctrl+C arrives
            CliRunner.Run("kill", ["-s", "INT", process.Id.ToString()], Temp.Path, null, TimeSpan.FromSeconds(30));

            // Then plan stops (a guard against the hang, not a measurement), exit 1, saying it was interrupted
            Assert.That(process.WaitForExit(TimeSpan.FromMinutes(2)), Is.True, "plan ignored Ctrl+C");
            Assert.That(process.ExitCode, Is.EqualTo(1), output.Result + error.Result);
            Assert.That(error.Result, Does.Contain("interrupted"));
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
    }
}
