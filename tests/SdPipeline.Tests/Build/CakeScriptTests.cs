using System.Text.RegularExpressions;
using SdPipeline.Pipeline;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Build;

/// <summary>The Cake script mirrors the stage graph, and its stage targets are cached end to end.</summary>
public sealed class CakeScriptTests
{
    private static string Script => File.ReadAllText(Path.Combine(RepoPaths.Root, "build", "build.cake"));

    [Test]
    public void StageTasks_Should_MirrorStageGraph()
    {
        // Task("X") ... .IsDependentOn("Y") ... .Does(... "run stage" ...) up to the next Task(
        var tasks = Regex.Matches(Script, @"Task\(""(?<name>\w+)""\)(?<body>.*?)(?=Task\(""|RunTarget)", RegexOptions.Singleline)
            .ToDictionary(m => m.Groups["name"].Value, m => m.Groups["body"].Value);

        foreach (var stage in ProjectStages.Graph.Stages)
        {
            Assert.That(tasks, Contains.Key(stage.CakeTask), $"build.cake has no task {stage.CakeTask} for stage {stage.Name}");
            string body = tasks[stage.CakeTask];
            Assert.That(body, Does.Contain($"\"run {stage.Name}\""), $"{stage.CakeTask} must run `sdpipe run {stage.Name}`");
            var dependencies = Regex.Matches(body, @"IsDependentOn\(""(\w+)""\)").Select(m => m.Groups[1].Value).Where(d => d != "BuildCli");
            var expected = stage.Upstream.Select(u => ProjectStages.Graph.Get(u).CakeTask);
            Assert.That(dependencies, Is.EquivalentTo(expected), $"{stage.CakeTask}'s IsDependentOn edges differ from the graph");
        }
    }

    [Test]
    public void BuildScript_Should_Refuse_When_AnArgumentIsMisspelt()
    {
        // --confg would otherwise be ignored, and the run go ahead on the default profile.
        var result = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), ["--target=Plan", "--exclusive", "--confg=configs/sd15.json"],
            RepoPaths.Root, null, TimeSpan.FromMinutes(5));

        Assert.That(result.ExitCode, Is.Not.EqualTo(0), result.All);
        Assert.That(result.All, Does.Contain("unknown argument --confg").And.Contain("--config"));
    }

    [Test]
    public void BuildPs1_Should_PassACommaListAsOneArgument_And_LeaveTheCallersLocation()
    {
        using var temp = new TempFolder();
        // PowerShell reads --set=...=full,half as an array; build.ps1 must hand it to Cake as the one argument it was typed as.
        string command = $"Set-Location '{temp.Path}'; & '{Path.Combine(RepoPaths.Root, "build.ps1")}' --target=Plan --exclusive --verbosity=diagnostic " +
            $"--artifacts='{temp.File("artifacts")}' --set=benchmark.resolution=full,half; 'exit=' + $LASTEXITCODE; 'location=' + (Get-Location).Path";
        var result = CliRunner.Run("dotnet", ["pwsh", "-NoProfile", "-Command", command], RepoPaths.Root, new Dictionary<string, string> { ["NO_COLOR"] = "1" },
            TimeSpan.FromMinutes(5));
        string output = Regex.Replace(result.All, @"\x1b\[[0-9;]*m", "");

        Assert.That(output, Does.Contain("--set \"benchmark.resolution=full,half\"").And.Not.Contain("Unknown command"), output);
        Assert.That(output, Does.Contain("exit=0"), output);
        Assert.That(output, Does.Contain($"location={temp.Path}"), output);
    }

    [Test]
    public void StageTargets_Should_StopBeforeAnyStage_When_DeviceIsCudaOnTheCpuBuild()
    {
        // Without --torch-backend=cuda BuildCli builds the CPU libtorch, which would refuse cuda only at the latents stage,
        // after the downloads and the model stage had run.
        using var temp = new TempFolder();
        var result = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), ["--target=Model", "--device=cuda", $"--artifacts={temp.File("artifacts")}"],
            RepoPaths.Root, new Dictionary<string, string> { ["TorchBackend"] = "" }, TimeSpan.FromMinutes(5));

        Assert.That(result.ExitCode, Is.Not.EqualTo(0), result.All);
        Assert.That(result.All, Does.Contain("--torch-backend=cuda").And.Not.Contain("model: building"));
        Assert.That(Directory.Exists(temp.File("artifacts")), Is.False, "no stage ran");
    }

    [Test]
    public void TestTarget_Should_StopAtOnce_When_TheFixturesAreMissing()
    {
        // A checkout with the build scripts and no ../shared beside it, as a fresh clone of this repository alone
        using var temp = new TempFolder();
        string repo = Directory.CreateDirectory(temp.File("repo")).FullName;
        foreach (string file in new[] { "build.sh", "build/build.cake", "build/build-data.cake", ".config/dotnet-tools.json" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(repo, file))!);
            File.Copy(Path.Combine(RepoPaths.Root, file), Path.Combine(repo, file));
        }

        var result = CliRunner.Run("bash", [Path.Combine(repo, "build.sh"), "--target=Test"], repo, null, TimeSpan.FromMinutes(5));

        Assert.That(result.ExitCode, Is.Not.EqualTo(0), result.All);
        Assert.That(result.All, Does.Contain(Path.Combine(temp.Path, "shared", "fixtures")).And.Contain("sdpipeline-shared"));
        Assert.That(result.All, Does.Not.Contain("test-prerequisites"), "it stops before installing anything");
    }

    [Test, Category("Slow")]
    public void DownloadTarget_Should_DoNoWork_When_RunASecondTime()
    {
        using var temp = new TempFolder();
        string artifacts = temp.File("artifacts");
        string[] arguments = ["--target=Download", $"--artifacts={artifacts}", "--set=download.count=8"];

        var first = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), arguments, RepoPaths.Root, null, TimeSpan.FromMinutes(10));
        Assert.That(first.ExitCode, Is.EqualTo(0), first.All);
        Assert.That(first.Output, Does.Contain("download: built"));
        string manifest = Directory.GetFiles(Path.Combine(artifacts, "download"), "manifest.json", SearchOption.AllDirectories).Single();
        var builtAt = File.GetLastWriteTimeUtc(manifest);

        var second = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), arguments, RepoPaths.Root, null, TimeSpan.FromMinutes(10));

        Assert.That(second.ExitCode, Is.EqualTo(0), second.All);
        Assert.That(second.Output, Does.Contain("download: cached").And.Contain("nothing to do"));
        Assert.That(File.GetLastWriteTimeUtc(manifest), Is.EqualTo(builtAt));
    }
}
