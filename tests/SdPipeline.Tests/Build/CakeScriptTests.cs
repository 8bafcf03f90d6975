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
