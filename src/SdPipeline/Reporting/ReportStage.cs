using System.Diagnostics;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Pipeline;
using SdPipeline.Sampling;
using SdPipeline.Training;
using TorchSharp;

namespace SdPipeline.Reporting;

/// <summary>
/// The <c>report</c> stage: gathers the chain's artifacts into <c>report.html</c> (self-contained),
/// <c>report.md</c> (for the GitHub job summary) and <c>summary.json</c>, and lays out <c>deliverables/</c> —
/// the report, the samples and the fine-tuned model in one folder for <c>actions/upload-artifact</c>.
/// </summary>
public sealed class ReportStage(StageGraph graph) : IStageRunner
{
    /// <summary>The stage as the graph declares it: name, Cake task, schema version, config keys, upstream stages, runner.</summary>
    public static StageDefinition Definition { get; } = new StageDefinition("report", "Report", 1, [], ["download", "train", "sample"],
        "Write report.html, report.md and summary.json")
    {
        ExternalInputs = ExternalInputs,
        CreateRunner = graph => new ReportStage(graph),
    };

    /// <summary>The folder of everything worth uploading, inside the report artifact.</summary>
    public const string DeliverablesFolder = "deliverables";

    /// <summary>
    /// The report shows the effective config as a diff against the defaults, so every key is an input (as the
    /// hash of the whole effective config: a report is cheap, and listing them all here would be noise).
    /// </summary>
    public static IReadOnlyDictionary<string, string> ExternalInputs(StageInputContext context)
    {
        var inputs = new Dictionary<string, string>
        {
            ["effective_config"] = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
                System.Text.Encoding.UTF8.GetBytes(CanonicalJson.Serialize(context.Config.Json)))),
        };
        // The benchmark's merged table is shown when it belongs to this config; a new merge refreshes the report.
        if (context.Store is { } store && CurrentBenchmark(store, context.Config) is { } path)
            inputs["benchmark"] = FileHashCache.HashFile(path);
        return inputs;
    }

    /// <summary>The store's merged benchmark result when it was merged for <paramref name="config"/>, else null.</summary>
    public static string? CurrentBenchmark(ArtifactStore store, EffectiveConfig config)
    {
        string path = BenchmarkSweep.ResultPath(store);
        if (!File.Exists(path)) return null;
        try
        {
            return SweepResult.Read(path).ConfigHash == BenchmarkSweep.ConfigHash(config) ? path : null;
        }
        catch (InvalidDataException)
        {
            return null; // a torn or foreign file: the report goes without the table
        }
    }

    /// <inheritdoc />
    public JObject Run(StageWorkspace workspace)
    {
        var config = workspace.Config;
        var (registry, datasetName) = DatasetSelection.Resolve(config.Typed.Download);
        var dataset = registry.Get(datasetName);
        string trainFolder = workspace.FolderOf(TrainStage.Definition);
        string sampleFolder = workspace.FolderOf(SampleStage.Definition);
        var trainSummary = workspace.ResultOf<TrainSummary>(TrainStage.Definition);

        var samples = Samples(sampleFolder);
        var sweep = CurrentBenchmark(workspace.Store, config) is { } benchmark ? SweepResult.Read(benchmark) : null;
        var input = new ReportInput(new RunOverview(
            config.Typed.Model.Base,
            dataset.Name,
            trainSummary?.Device ?? config.Typed.Runtime.Device,
            ArtifactStore.ToolVersion,
            typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown",
            torch.__version__,
            GitCommit(),
            DateTimeOffset.UtcNow)
        {
            Numerics = trainSummary?.NumericsFinding,
        })
        {
            Stages = Stages(workspace),
            ConfigDifferences = ConfigDifference.From(config),
            Metrics = File.Exists(Path.Combine(trainFolder, FineTuner.MetricsFile))
                ? MetricsLog.Read(Path.Combine(trainFolder, FineTuner.MetricsFile))
                : MetricsLog.Empty,
            Samples = samples,
            Validation = ValidationImages.Read(trainFolder) is { } validation ? ValidationGrid.From(validation) : null,
            Warnings = Warnings(workspace),
            Adherence = dataset.Source == "synthetic:shapes" ? PromptAdherence.Evaluate(samples) : null,
            Benchmark = sweep?.ToTable(),
            Method = Method(trainSummary, workspace.ResultOf<SampleSummary>(SampleStage.Definition), sweep),
        };
        var facts = ReportWriter.Write(input, workspace.Directory);
        Deliverables(workspace);

        var summary = SummaryJsonWriter.Build(facts);
        workspace.Log($"report: wrote {ReportWriter.HtmlFileName}, {ReportWriter.MarkdownFileName} and {ReportWriter.SummaryFileName}; {DeliverablesFolder}/ holds them with the samples and the " +
            (input.Method is { IsLora: true } ? "LoRA files" : "model"));
        if (input.Adherence is { } adherence)
            workspace.Log($"report: colour adherence base {adherence.Base.ColorRate:P0}, fine-tuned {adherence.FineTuned.ColorRate:P0}");
        return summary;
    }

    /// <summary>The training method from the train stage's summary, the LoRA strength from the sample stage's, the LoRA-vs-full benchmark effect.</summary>
    private static TrainingMethod? Method(TrainSummary? train, SampleSummary? sample, SweepResult? sweep)
    {
        if (train is null) return null;
        var lora = train.Lora;
        return new TrainingMethod(train.Method, train.TrainableParameters)
        {
            Rank = lora?.Rank,
            Alpha = lora?.Alpha,
            Targets = lora is null ? [] : [.. lora.Targets, .. lora.TextEncoder ? new[] { "text_encoder" } : []],
            BaseParameters = lora?.BaseParameters,
            Files = lora?.Files ?? new Dictionary<string, long>(),
            SampleScale = sample?.LoraScale,
            BenchmarkComparison = sweep?.Effects.FirstOrDefault(e => e.Setting == "method=lora"),
        };
    }

    /// <summary>Every stage of the chain for this config, with its fingerprint, build time and whether this run found it cached.</summary>
    private IReadOnlyList<StageRun> Stages(StageWorkspace workspace)
    {
        var runLog = new RunLog(workspace.Store);
        var plans = new Planner(graph, workspace.Store, new FileHashCache(null)).Plan(workspace.Config, cancellation: workspace.Cancellation);
        var rows = new List<StageRun>();
        foreach (var plan in plans.Where(p => p.Stage.Name != workspace.Stage.Name && p.Status == StageStatus.Cached))
        {
            var manifest = Manifest.TryRead(Path.Combine(plan.ArtifactDirectory!, Manifest.FileName))!;
            var logged = runLog.Latest(plan.Stage.Name, manifest.Fingerprint);
            rows.Add(new StageRun(plan.Stage.Name, manifest.Fingerprint, logged?.CacheHit ?? false, manifest.DurationSeconds));
        }
        return rows;
    }

    private static IReadOnlyList<SampleSet> Samples(string folder)
    {
        var records = JsonConvert.DeserializeObject<List<SampleRecord>>(File.ReadAllText(Path.Combine(folder, SampleStage.SamplesFile))) ?? [];
        return records.GroupBy(r => r.Prompt).Select(g => new SampleSet(g.Key,
            g.Select(r => SampleImage.FromFile(r.Seed, Path.Combine(folder, r.Base))).ToList(),
            g.Select(r => SampleImage.FromFile(r.Seed, Path.Combine(folder, r.FineTuned))).ToList())).ToList();
    }

    private static List<string> Warnings(StageWorkspace workspace)
    {
        var warnings = new List<string>();
        string skipped = Path.Combine(workspace.FolderOf(DownloadStage.Definition), DatasetWriter.SkippedFile);
        if (File.Exists(skipped))
        {
            var reasons = File.ReadLines(skipped).Select(l => JsonConvert.DeserializeObject<SkippedItem>(l)).Where(s => s is not null)
                .GroupBy(s => s!.Reason.Split(':')[0]).Select(g => $"{g.Count()} {g.Key}").ToList();
            if (reasons.Count > 0) warnings.Add($"download skipped {string.Join(", ", reasons)} (see skipped.jsonl)");
        }
        return warnings;
    }

    private void Deliverables(StageWorkspace workspace)
    {
        string folder = Path.Combine(workspace.Directory, DeliverablesFolder);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.CreateDirectory(folder);
        foreach (string file in new[] { ReportWriter.HtmlFileName, ReportWriter.MarkdownFileName, ReportWriter.SummaryFileName })
            File.Copy(Path.Combine(workspace.Directory, file), Path.Combine(folder, file));
        // Links, not copies: the samples and the model already live in their own artifacts (upload-artifact follows links).
        Directory.CreateSymbolicLink(Path.Combine(folder, "samples"), Path.GetFullPath(workspace.FolderOf(SampleStage.Definition)));
        // A LoRA run's result is its adapter files (lora/: diffusers and kohya layouts); a full fine-tune's is a model folder.
        string train = workspace.FolderOf(TrainStage.Definition);
        string lora = Path.Combine(train, TrainStage.LoraFolder);
        if (Directory.Exists(lora)) Directory.CreateSymbolicLink(Path.Combine(folder, "lora"), Path.GetFullPath(lora));
        else Directory.CreateSymbolicLink(Path.Combine(folder, "model"), Path.GetFullPath(Path.Combine(train, TrainStage.PipelineFolder)));
        // The validation images step by step (train.validation_prompts), with their grid.png.
        string validationImages = Path.Combine(train, ValidationImages.FolderName);
        if (Directory.Exists(validationImages)) Directory.CreateSymbolicLink(Path.Combine(folder, ValidationImages.FolderName), Path.GetFullPath(validationImages));
        // The same fine-tune as one original-layout file, for AUTOMATIC1111 and ComfyUI.
        string single = Path.Combine(train, SingleFileDeliverable.FileName);
        if (File.Exists(single)) File.CreateSymbolicLink(Path.Combine(folder, SingleFileDeliverable.FileName), Path.GetFullPath(single));
    }

    private static string? GitCommit()
    {
        if (Environment.GetEnvironmentVariable("GITHUB_SHA") is { Length: > 0 } sha) return sha;
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse HEAD") { RedirectStandardOutput = true, RedirectStandardError = true });
            if (git is null) return null;
            string output = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit(5000);
            return git.ExitCode == 0 && output.Length == 40 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
