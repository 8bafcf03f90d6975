// SdPipeline's build: Build, Test, and one task per pipeline stage. Each stage task runs `sdpipe run STAGE`
// in its own process, so libtorch never loads here and a crash in one stage leaves the others' artifacts.
// The stage tasks and their IsDependentOn edges mirror ProjectStages.Graph (src/SdPipeline/Stages/
// ProjectStages.cs); a test (CakeScriptTests) fails when the two disagree.
#load "build-data.cake"

// Paths in this script, and the working directory of every sdpipe call, are the repository root.
Context.Environment.WorkingDirectory = Context.Environment.WorkingDirectory.Combine("..").Collapse();

var target = Argument("target", "Default");

Setup<BuildData>(context => BuildData.From(context));

// On GitHub Actions every task's output is one collapsible log group.
TaskSetup(context => { if (GitHubActions.IsRunningOnGitHubActions) GitHubActions.Commands.StartGroup(context.Task.Name); });
TaskTeardown(context => { if (GitHubActions.IsRunningOnGitHubActions) GitHubActions.Commands.EndGroup(); });

ProcessArgumentBuilder SdpipeArguments(BuildData data, string verb)
{
    var arguments = new ProcessArgumentBuilder().Append(verb);
    foreach (var argument in data.PassThrough) arguments.Append(argument);
    return arguments;
}

void Sdpipe(BuildData data, string verb)
{
    var arguments = SdpipeArguments(data, verb);
    if (HasArgument("force") && verb.StartsWith("run ")) arguments.Append("--force");
    DotNetExecute(data.CliDll, arguments);
}

// The path `sdpipe path` prints for a stage's artifact file, or null when it is not built.
string SdpipePath(BuildData data, string stageAndFile)
{
    var arguments = SdpipeArguments(data, "path " + stageAndFile);
    int exit = StartProcess("dotnet", new ProcessSettings { Arguments = arguments.Prepend(data.CliDll.FullPath), RedirectStandardOutput = true, Silent = true }, out var lines);
    return exit == 0 ? lines.LastOrDefault() : null;
}

// benchmark.md beside the merged benchmark.json (sdpipe benchmark writes both into ARTIFACTS/benchmark/).
string SdpipeBenchmarkTable(BuildData data) =>
    System.IO.Path.Combine(data.ArtifactsDirectory, "benchmark", "benchmark.md");

Task("Build")
    .Description("Build the solution.")
    .Does<BuildData>(data => DotNetBuild(data.Solution.FullPath, new DotNetBuildSettings { Configuration = data.Configuration, MSBuildSettings = data.MSBuild }));

Task("BuildCli")
    .Description("Build the sdpipe command the stage tasks run.")
    // The CPU build stops only at the first stage that uses the device, after the model and dataset downloads (SD 1.5's
    // 4 GB) or the builtin model's training: say it before anything runs.
    .Does<BuildData>(data =>
    {
        if (data.Device == "cuda" && data.TorchBackend != "cuda")
            throw new CakeException($"--device=cuda needs the CUDA build of sdpipe, and this run builds the {data.TorchBackend} one: " +
                "add --torch-backend=cuda (or --device=cpu to run on the CPU)");
    })
    .Does<BuildData>(data => DotNetBuild(data.CliProject.FullPath, new DotNetBuildSettings { Configuration = data.Configuration, MSBuildSettings = data.MSBuild }));

// The tools some tests drive (Chromium, shellcheck, node/npm): installed when that needs no prompt, else the build
// stops here with the command to run, instead of failing those tests minutes later.
void EnsureTestPrerequisites()
{
    if (!IsRunningOnUnix()) return; // the script installs Debian packages; elsewhere the tests name what they miss
    int exit = StartProcess("bash", new ProcessSettings { Arguments = ".ci/test-prerequisites.sh", WorkingDirectory = Context.Environment.WorkingDirectory });
    if (exit != 0) throw new CakeException(exit, "the tests' prerequisites are missing: run the command printed above, then the tests again");
}

// The reference fixtures the tests read (tests/SdPipeline.Tests/Support/RepoPaths.cs): without them most tests fail, each
// saying so, after the whole build and run; say it once, first.
void EnsureFixtures()
{
    var fixtures = Context.Environment.WorkingDirectory.Combine("../shared/fixtures").Collapse();
    if (!DirectoryExists(fixtures))
        throw new CakeException($"the tests read the reference fixtures from {fixtures}, which is missing: clone the fixtures repository " +
            "(sdpipeline-shared, as .github/workflows/ci.yml checks it out) into ../shared beside this repository, then run the tests again");
}

Task("Test")
    .Description("Run the tests (NUnit), after installing the tools they need (.ci/test-prerequisites.sh); results in TestResults/tests.trx.")
    .Does<BuildData>(data =>
    {
        EnsureFixtures();
        EnsureTestPrerequisites();
        DotNetTest(data.Solution.FullPath, new DotNetTestSettings
        {
            Configuration = data.Configuration,
            MSBuildSettings = data.MSBuild,
            ResultsDirectory = data.TestResults,
            Loggers = new[] { "trx;LogFileName=tests.trx", "console;verbosity=normal" },
            Filter = string.IsNullOrEmpty(data.TestFilter) ? null : data.TestFilter,
        });
    });

Task("Plan")
    .Description("Show every stage as cached or stale, and why (sdpipe plan).")
    .IsDependentOn("BuildCli")
    .Does<BuildData>(data => Sdpipe(data, "plan"));

// STAGES: one task per stage of ProjectStages.Graph, with the same edges.
Task("Model")
    .Description("Resolve the base model (sdpipe run model).")
    .IsDependentOn("BuildCli")
    .Does<BuildData>(data => Sdpipe(data, "run model"));

Task("Download")
    .Description("Fetch, verify and normalise the dataset (sdpipe run download).")
    .IsDependentOn("BuildCli")
    .Does<BuildData>(data => Sdpipe(data, "run download"));

Task("PrecomputeLatents")
    .Description("Encode the dataset into latent shards (sdpipe run latents).")
    .IsDependentOn("BuildCli")
    .IsDependentOn("Model")
    .IsDependentOn("Download")
    .Does<BuildData>(data => Sdpipe(data, "run latents"));

Task("Train")
    .Description("Fine-tune the UNet (sdpipe run train).")
    .IsDependentOn("BuildCli")
    .IsDependentOn("Model")
    .IsDependentOn("PrecomputeLatents")
    .Does<BuildData>(data => Sdpipe(data, "run train"));

Task("Sample")
    .Description("Generate images from the base and fine-tuned weights (sdpipe run sample).")
    .IsDependentOn("BuildCli")
    .IsDependentOn("Model")
    .IsDependentOn("Download")
    .IsDependentOn("Train")
    .Does<BuildData>(data => Sdpipe(data, "run sample"));

Task("Report")
    .Description("Write the HTML and Markdown report (sdpipe run report).")
    .IsDependentOn("BuildCli")
    .IsDependentOn("Download")
    .IsDependentOn("Train")
    .IsDependentOn("Sample")
    .Does<BuildData>(data =>
    {
        Sdpipe(data, "run report");
        // On GitHub Actions the report's Markdown becomes the job summary, and the folder to upload a step output.
        if (GitHubActions.IsRunningOnGitHubActions)
        {
            if (SdpipePath(data, "report report.md") is string summary && FileExists(summary))
                GitHubActions.Commands.SetStepSummary(System.IO.File.ReadAllText(summary));
            if (SdpipePath(data, "report deliverables") is string deliverables)
                GitHubActions.Commands.SetOutputParameter("report_dir", deliverables);
        }
    });

// TARGETS
Task("Benchmark")
    .Description("Sweep mixed precision x gradient checkpointing x resolution: a short training run per cell, each in its own process (sdpipe benchmark).")
    .IsDependentOn("BuildCli")
    .IsDependentOn("Model")
    .IsDependentOn("PrecomputeLatents")
    .Does<BuildData>(data =>
    {
        // The latent cache at half resolution too (the latents stage is keyed by resolution: both caches coexist).
        Sdpipe(data, "benchmark --prepare");
        Sdpipe(data, HasArgument("force") ? "benchmark --force" : "benchmark");
        // The table is in artifacts/benchmark/benchmark.md; the Report target includes it in the report.
        if (GitHubActions.IsRunningOnGitHubActions
            && SdpipeBenchmarkTable(data) is string table && FileExists(table))
            GitHubActions.Commands.SetStepSummary(System.IO.File.ReadAllText(table));
    });

// Build outputs only: `sdpipe gc` keeps just what the config it is given references, so a Clean run without the
// profile of an earlier expensive run (an SD 1.5 fine-tune, its resumable checkpoints) would have deleted it.
Task("Clean")
    .Description("Remove build outputs (bin/, TestResults/); the artifact store is pruned by `sdpipe gc` with the configs to keep.")
    .Does<BuildData>(data =>
    {
        CleanDirectories("./src/**/bin/" + data.Configuration);
        CleanDirectories("./tests/**/bin/" + data.Configuration);
        CleanDirectories("./TestResults");
    });

Task("Default")
    .Description("The whole chain: Report.")
    .IsDependentOn("Report");

RunTarget(target);
