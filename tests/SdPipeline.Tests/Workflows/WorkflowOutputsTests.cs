using System.Text.RegularExpressions;
using SdPipeline.Pipeline;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Workflows;

/// <summary>
/// The workflows read step outputs that sdpipe and Cake really write: <c>sdpipe plan --github-output</c>'s
/// <c>STAGE_fingerprint/_status/_path</c>, the Report task's <c>report_dir</c> and job summary, the actions' own
/// outputs, and what the workflows' scripts write. A name that nothing writes reads as an empty string on
/// GitHub, silently: a cache never restored, a report never uploaded. These tests make it loud.
/// </summary>
public sealed class WorkflowOutputsTests
{
    /// <summary>Outputs of the actions the workflows use (from each action's action.yml).</summary>
    private static readonly Dictionary<string, string[]> ActionOutputs = new()
    {
        ["actions/checkout"] = ["ref", "commit"],
        ["actions/setup-dotnet"] = ["cache-hit", "dotnet-version"],
        ["actions/cache"] = ["cache-hit"],
        ["actions/cache/restore"] = ["cache-hit", "cache-primary-key", "cache-matched-key"],
        ["actions/cache/save"] = [],
        ["actions/upload-artifact"] = ["artifact-id", "artifact-url", "artifact-digest"],
        ["actions/download-artifact"] = ["download-path"],
    };

    private static readonly Regex EchoedOutput = new(@"echo\s+[""']?(?<name>[A-Za-z_][\w-]*)(=|<<)");
    private static readonly Regex ScriptCall = new(@"\.github/scripts/[\w.-]+\.sh");

    private static string[]? _planOutputLines;

    /// <summary>The lines a real <c>sdpipe plan --github-output</c> appends, on the default profile.</summary>
    private static string[] PlanOutputLines()
    {
        if (_planOutputLines is not null) return _planOutputLines;
        using var temp = new TempFolder();
        temp.CopyTinyProfile();
        string output = temp.File("github_output");
        File.WriteAllText(output, "earlier=line\n"); // GitHub's file may already hold other steps' lines: append, never truncate
        var result = CliRunner.Sdpipe(temp.Path, null, "plan", "--github-output", output);
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        var lines = File.ReadAllLines(output);
        Assert.That(lines[0], Is.EqualTo("earlier=line"));
        return _planOutputLines = lines[1..];
    }

    private static HashSet<string> PlanOutputNames() => PlanOutputLines().Select(l => l[..l.IndexOf('=')]).ToHashSet();

    /// <summary>The outputs the Cake script sets (GitHubActions.Commands.SetOutputParameter).</summary>
    private static HashSet<string> CakeOutputNames() =>
        Regex.Matches(File.ReadAllText(Path.Combine(RepoPaths.Root, "build", "build.cake")), @"SetOutputParameter\(""(\w+)""")
            .Select(m => m.Groups[1].Value).ToHashSet();

    /// <summary>What a step writes to its outputs, judged from what it runs.</summary>
    private static HashSet<string> Produced(WorkflowStep step)
    {
        var names = new HashSet<string>();
        if (step.Uses is { } uses)
        {
            string action = uses.Split('@')[0];
            Assert.That(ActionOutputs, Contains.Key(action), $"step '{step.Name}' uses {action}: add its outputs to ActionOutputs");
            names.UnionWith(ActionOutputs[action]);
        }
        if (step.Run is { } run)
        {
            if (run.Contains("\"$SDPIPE\" plan") && run.Contains("--github-output \"$GITHUB_OUTPUT\"")) names.UnionWith(PlanOutputNames());
            if (run.Contains("./build.sh")) names.UnionWith(CakeOutputNames());
            var texts = new List<string> { run };
            texts.AddRange(ScriptCall.Matches(run).Select(m => File.ReadAllText(Path.Combine(RepoPaths.Root, m.Value))));
            foreach (string text in texts.Where(t => t.Contains("GITHUB_OUTPUT")))
                foreach (string line in text.Split('\n').Where(l => !l.Contains("GITHUB_ENV")))
                    names.UnionWith(EchoedOutput.Matches(line).Select(m => m.Groups["name"].Value));
        }
        return names;
    }

    [Test]
    public void PlanGithubOutput_Should_BeNameValueLines_ForEveryStage()
    {
        var lines = PlanOutputLines();

        // Then each line is name=value, three per stage of the graph, in the forms the cache steps build keys from
        Assert.That(lines, Has.Length.EqualTo(3 * ProjectStages.Graph.Stages.Count));
        foreach (var stage in ProjectStages.Graph.Stages)
        {
            string name = stage.Name;
            Assert.That(lines, Has.Exactly(1).Matches<string>(l => Regex.IsMatch(l, $"^{name}_fingerprint=[0-9a-f]{{64}}$")), name);
            Assert.That(lines, Has.Exactly(1).Matches<string>(l => Regex.IsMatch(l, $"^{name}_status=(cached|stale|error)$")), name);
            Assert.That(lines, Has.Exactly(1).Matches<string>(l => Regex.IsMatch(l, $"^{name}_path=artifacts/{name}/[0-9a-f]{{{ArtifactStore.ShortLength}}}$")), name);
            string fingerprint = lines.Single(l => l.StartsWith($"{name}_fingerprint="))[(name.Length + 13)..];
            Assert.That(lines, Does.Contain($"{name}_path=artifacts/{name}/{ArtifactStore.Short(fingerprint)}"), "the path is the fingerprint's folder");
        }
    }

    [Test]
    public void StepOutputs_Should_BeWrittenByAnEarlierStepOfTheSameJob()
    {
        var problems = new List<string>();
        foreach (var workflow in WorkflowFile.All())
            foreach (var job in workflow.Jobs)
            {
                var steps = job.Steps.Where(s => s.Id is not null).ToDictionary(s => s.Id!);
                var consumers = job.Steps.Select(s => (s.Index, s.Name, Texts: s.Scalars)).ToList();
                // Job outputs (jobs.<id>.outputs) read the steps after they all ran.
                if (job.Node.Children.TryGetValue("outputs", out var outputs))
                    consumers.Add((int.MaxValue, "job outputs", WorkflowFile.AllScalars(outputs)));
                foreach (var (index, name, texts) in consumers)
                    foreach (Match reference in texts.SelectMany(t => WorkflowFile.StepOutputReference.Matches(t)))
                    {
                        string id = reference.Groups["step"].Value, output = reference.Groups["name"].Value;
                        string where = $"{workflow.Name}: job {job.Id}, {name}: {reference.Value}";
                        if (!steps.TryGetValue(id, out var producer)) problems.Add($"{where}: no step has id '{id}'");
                        else if (producer.Index >= index) problems.Add($"{where}: step '{id}' runs later");
                        else if (!Produced(producer).Contains(output))
                            problems.Add($"{where}: step '{id}' writes {{{string.Join(", ", Produced(producer).Order())}}}, not '{output}'");
                    }
            }

        Assert.That(problems, Is.Empty);
    }

    [Test]
    public void JobOutputs_Should_BeDeclaredByTheJobsTheyAreReadFrom()
    {
        var problems = new List<string>();
        foreach (var workflow in WorkflowFile.All())
        {
            var declared = workflow.Jobs.ToDictionary(j => j.Id, j => j.Node.Children.TryGetValue("outputs", out var o)
                ? ((YamlDotNet.RepresentationModel.YamlMappingNode)o).Children.Keys.Select(k => k.ToString()).ToHashSet()
                : []);
            foreach (var job in workflow.Jobs)
                foreach (Match reference in WorkflowFile.AllScalars(job.Node).SelectMany(t => WorkflowFile.JobOutputReference.Matches(t)))
                    if (!declared.TryGetValue(reference.Groups["job"].Value, out var names) || !names.Contains(reference.Groups["name"].Value))
                        problems.Add($"{workflow.Name}: job {job.Id} reads {reference.Value}, which is not declared");
        }

        Assert.That(problems, Is.Empty);
    }

    [Test]
    public void CacheSteps_Should_KeyAndPathEachStageByItsOwnFingerprint_AroundTheChain()
    {
        // Given the train job's cache steps and the step that runs the chain
        var job = WorkflowFile.Load("train.yml").Jobs.Single(j => j.Id == "train");
        var cake = job.Steps.Single(s => s.Run?.Contains("./build.sh --target=\"$TARGET\"") == true);
        var cacheSteps = job.Steps.Where(s => s.Uses?.StartsWith("actions/cache/") == true).ToList();

        foreach (var stage in ProjectStages.Graph.Stages.Select(s => s.Name))
        {
            // Then every stage has one restore before the chain and one save after it,
            var restore = cacheSteps.Where(s => s.Uses!.StartsWith("actions/cache/restore@") && s.With("key")!.StartsWith($"sdpipe-{stage}-")).ToList();
            var save = cacheSteps.Where(s => s.Uses!.StartsWith("actions/cache/save@") && s.With("key")!.StartsWith($"sdpipe-{stage}-")).ToList();
            Assert.That(restore, Has.Count.EqualTo(1), $"restore steps of {stage}");
            Assert.That(save, Has.Count.EqualTo(1), $"save steps of {stage}");
            Assert.That(restore[0].Index, Is.LessThan(cake.Index), $"{stage} is restored before the chain runs");
            Assert.That(save[0].Index, Is.GreaterThan(cake.Index), $"{stage} is saved after the chain ran");
            Assert.That(save[0].If, Does.StartWith("always()"), $"{stage} is saved even when a later stage failed");

            foreach (var step in restore.Concat(save))
            {
                // keyed by its own fingerprint and caching its own folder, read from the same plan step
                var key = Regex.Match(step.With("key")!, @"^sdpipe-(?<stage>\w+)-\$\{\{ steps\.(?<step>[\w-]+)\.outputs\.(?<name>\w+) \}\}$");
                Assert.That(key.Success, Is.True, $"{step.Name}: key {step.With("key")}");
                Assert.That(key.Groups["name"].Value, Is.EqualTo($"{stage}_fingerprint"), step.Name);
                string firstPath = step.With("path")!.Split('\n')[0].Trim();
                Assert.That(firstPath, Is.EqualTo($"${{{{ steps.{key.Groups["step"].Value}.outputs.{stage}_path }}}}"), step.Name);
                // and only when the plan said the stage was stale (a cached stage needs no download)
                Assert.That(step.If, Does.Contain($"steps.plan.outputs.{stage}_status == 'stale'"), step.Name);
            }
            Assert.That(save[0].If, Does.Contain($"steps.after.outputs.{stage}_status == 'cached'"), $"{stage} is saved only once it is complete");
            Assert.That(save[0].If, Does.Contain($"steps.{restore[0].Id}.outputs.cache-hit != 'true'"), $"{stage} is not saved again after a restore");
        }
    }

    [Test, Category("Slow")]
    public void CakeReportTask_Should_WriteTheJobSummaryAndReportDir_AsTheTrainWorkflowReadsThem()
    {
        // Given a tiny chain run by Cake as on GitHub Actions
        using var temp = new TempFolder();
        string output = temp.File("github_output"), summary = temp.File("step_summary");
        File.WriteAllText(output, "");
        File.WriteAllText(summary, "");
        var environment = new Dictionary<string, string>
        {
            ["GITHUB_ACTIONS"] = "true",
            ["GITHUB_OUTPUT"] = output,
            ["GITHUB_STEP_SUMMARY"] = summary,
        };
        string[] arguments =
        [
            "--target=Report", $"--artifacts={temp.File("artifacts")}",
            "--set=model.builtin_autoencoder_steps=0", "--set=download.count=8", "--set=train.max_train_steps=2",
            "--set=train.train_batch_size=4", "--set=train.validation_steps=0", "--set=train.heldout_max_items=2",
            "--set=sample.heldout_prompts=1", "--set=sample.seeds=0", "--set=sample.steps=2",
        ];

        var result = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), arguments, RepoPaths.Root, environment, TimeSpan.FromMinutes(10));

        // Then the step outputs are name=value lines, report_dir among them, naming the deliverables folder
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        var lines = File.ReadAllLines(output);
        Assert.That(lines, Is.All.Matches<string>(l => Regex.IsMatch(l, @"^[A-Za-z_]\w*=")), "GitHub reads name=value lines");
        string reportDir = lines.Single(l => l.StartsWith("report_dir="))["report_dir=".Length..];
        Assert.That(Path.GetFileName(reportDir), Is.EqualTo("deliverables"));

        // and it holds every file the workflow uploads, and the two links it resolves for upload-artifact
        var train = WorkflowFile.Load("train.yml").Jobs.Single(j => j.Id == "train");
        var uploaded = train.Steps.Where(s => s.Uses?.StartsWith("actions/upload-artifact@") == true)
            .SelectMany(s => s.With("path")!.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .Where(p => p.StartsWith("${{ steps.cake.outputs.report_dir }}/")).Select(p => p.Split("}}/")[1]).ToList();
        Assert.That(uploaded, Is.Not.Empty);
        foreach (string file in uploaded) Assert.That(File.Exists(Path.Combine(reportDir, file)), Is.True, file);
        var locate = train.Steps.Single(s => s.Id == "deliverables").Run!;
        foreach (string link in new[] { "samples", "model" })
        {
            Assert.That(locate, Does.Contain($"readlink -f \"$REPORT_DIR/{link}\""));
            var target = new DirectoryInfo(Path.Combine(reportDir, link)).ResolveLinkTarget(returnFinalTarget: true);
            Assert.That(target, Is.Not.Null.And.Property("Exists").True, $"{link} links to a folder");
        }

        // and the job summary is the report's Markdown
        string markdown = File.ReadAllText(Path.Combine(reportDir, "report.md"));
        Assert.That(File.ReadAllText(summary).TrimEnd(), Is.EqualTo(markdown.TrimEnd()));
    }

    [Test, Category("Slow")]
    public void DeliverablesStep_Should_NameOnlyLinksThatExist_AndUploadTheLoraFiles_When_TheRunIsLora()
    {
        // Given a tiny LoRA chain run by Cake as on GitHub Actions (deliverables/ then links lora/, not model/)
        using var temp = new TempFolder();
        string output = temp.File("github_output");
        File.WriteAllText(output, "");
        var environment = new Dictionary<string, string> { ["GITHUB_ACTIONS"] = "true", ["GITHUB_OUTPUT"] = output, ["GITHUB_STEP_SUMMARY"] = temp.File("summary") };
        string[] arguments =
        [
            "--target=Report", $"--artifacts={temp.File("artifacts")}", "--set=train.method=lora",
            "--set=model.builtin_autoencoder_steps=0", "--set=download.count=8", "--set=train.max_train_steps=2",
            "--set=train.train_batch_size=4", "--set=train.validation_steps=0", "--set=train.heldout_max_items=2",
            "--set=sample.heldout_prompts=1", "--set=sample.seeds=0", "--set=sample.steps=2",
        ];
        var result = CliRunner.Run(Path.Combine(RepoPaths.Root, "build.sh"), arguments, RepoPaths.Root, environment, TimeSpan.FromMinutes(10));
        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        string reportDir = File.ReadAllLines(output).Single(l => l.StartsWith("report_dir="))["report_dir=".Length..];
        Assert.That(Directory.Exists(Path.Combine(reportDir, "lora")), Is.True, "a LoRA run's deliverables link its lora/ folder");

        // When the train job's step that locates the deliverables runs on that folder
        var train = WorkflowFile.Load("train.yml").Jobs.Single(j => j.Id == "train");
        string located = temp.File("located");
        File.WriteAllText(located, "");
        var locate = CliRunner.Run("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", train.Steps.Single(s => s.Id == "deliverables").Run!],
            temp.Path, new Dictionary<string, string> { ["REPORT_DIR"] = reportDir, ["GITHUB_OUTPUT"] = located }, TimeSpan.FromMinutes(1));
        Assert.That(locate.ExitCode, Is.EqualTo(0), locate.All);

        // Then every folder it names exists (an upload of a missing path fails the job: if-no-files-found: error),
        var outputs = File.ReadAllLines(located).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        foreach (var (name, path) in outputs) Assert.That(Directory.Exists(path), Is.True, $"deliverables output {name}={path}");
        Assert.That(outputs.Keys, Does.Contain("samples").And.Contain("lora").And.Not.Contain("model"));

        // and the LoRA files are uploaded as the run's weights are
        var uploads = train.Steps.Where(s => s.Uses?.StartsWith("actions/upload-artifact@") == true).ToList();
        var lora = uploads.SingleOrDefault(s => s.With("path") == "${{ steps.deliverables.outputs.lora }}");
        Assert.That(lora, Is.Not.Null, "an upload step for the LoRA files");
        Assert.That(lora!.If, Does.Contain("steps.deliverables.outputs.lora != ''"));
        Assert.That(lora.With("if-no-files-found"), Is.EqualTo("error"));
    }

    [Test, Category("Slow")]
    public void BenchmarkCellJob_Should_PackAndUploadAFailedCellsResult_So_TheMergedTableShowsIt()
    {
        // Given a cell whose run failed the pre-flight (recorded as oom, cached like a measurement, exit 1)
        using var temp = new TempFolder();
        temp.CopyTinyProfile();
        string[] args = ["--config=configs/tiny.json", "--device=cpu", "--set=runtime.memory_limit_gb=0.001", "--set=model.builtin_autoencoder_steps=0", "--set=download.count=8"];
        var cell = CliRunner.Sdpipe(temp.Path, null, ["benchmark", .. args, "--cell", "no-off-full"]);
        Assert.That(cell.ExitCode, Is.EqualTo(1), cell.All);
        Assert.That(cell.Output, Does.Contain("oom"));

        // Then the cell job packs and uploads it even though the step that ran it failed,
        var job = WorkflowFile.Load("benchmark.yml").Jobs.Single(j => j.Id == "cell");
        int run = job.Steps.Single(s => s.Run?.Contains("--cell \"$CELL\"") == true && !s.Run.Contains("--print-path")).Index;
        var pack = job.Steps.Single(s => s.Id == "pack");
        var upload = job.Steps.Single(s => s.Uses?.StartsWith("actions/upload-artifact@") == true);
        Assert.That(pack.Index, Is.GreaterThan(run));
        Assert.That(pack.If, Does.StartWith("always()"), "pack runs after a failed cell");
        Assert.That(upload.If, Does.StartWith("always()").And.Contain("steps.pack.outputs.archive != ''"), "upload runs after a failed cell, when pack wrote an archive");

        // and packing writes the archive of the failed cell, and none (without failing) for a cell that left no result
        File.WriteAllLines(temp.File("sdpipe.args"), args);
        ProcessResult Pack(string id, string output) => CliRunner.Run("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", pack.Run!], temp.Path,
            new Dictionary<string, string>
            {
                ["SDPIPE"] = RepoPaths.CliDll, ["SDPIPE_ARGS"] = temp.File("sdpipe.args"), ["CELL"] = id,
                ["RUNNER_TEMP"] = temp.Path, ["GITHUB_OUTPUT"] = output,
            }, TimeSpan.FromMinutes(2));
        File.WriteAllText(temp.File("out-oom"), "");
        var packed = Pack("no-off-full", temp.File("out-oom"));
        Assert.That(packed.ExitCode, Is.EqualTo(0), packed.All);
        string archive = File.ReadAllLines(temp.File("out-oom")).Single(l => l.StartsWith("archive="))["archive=".Length..];
        var listing = CliRunner.Run("tar", ["-tf", archive], temp.Path, null, TimeSpan.FromMinutes(1));
        Assert.That(listing.Output, Does.Contain("cell.json"));

        File.WriteAllText(temp.File("out-none"), "");
        var none = Pack("no-on-half", temp.File("out-none"));
        Assert.That(none.ExitCode, Is.EqualTo(0), none.All);
        Assert.That(File.ReadAllText(temp.File("out-none")), Is.Empty);
    }
}
