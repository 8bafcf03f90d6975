using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Newtonsoft.Json.Linq;
using SdPipeline.BaseModel;
using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Latents;
using SdPipeline.Pipeline;
using SdPipeline.Training;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// The benchmark sweep's cells and how each is planned: its config (the profile with the cell's settings and the
/// benchmark's step counts applied), its upstream artifacts (the model, and the latent cache at the cell's
/// resolution) and its fingerprint. Cells live in the artifact store like stages, under <c>benchmark/</c>, but are not
/// part of the stage graph: no stage reads them, and the report reads only their merged table.
/// </summary>
public static class BenchmarkSweep
{
    /// <summary>The store folder of the cells and of the merged result.</summary>
    public const string StageName = "benchmark";

    /// <summary>Bumped when a cell's result changes meaning.</summary>
    public const int SchemaVersion = 1;

    /// <summary>The merged result in <c>artifacts/benchmark/</c>.</summary>
    public const string ResultFile = "benchmark.json";

    /// <summary>The merged table as Markdown, beside <see cref="ResultFile"/>.</summary>
    public const string TableFile = "benchmark.md";

    // The stages a cell needs: planning them alone keeps the report stage (which reads the merged result) out of it.
    private static readonly StageGraph Upstream = new([ModelStage.Definition, DownloadStage.Definition, LatentsStage.Definition]);

    // The runtime settings that choose how a step is computed, and so what it costs (declared before ConfigKeys, which reads it).
    private static readonly string[] MeasurementRuntimeKeys = ["runtime.onednn", "runtime.kernels"];

    /// <summary>
    /// Keys of the cell's config in its fingerprint: what changes the training run or the measurement. The train stage
    /// leaves out <c>train.fused_backward_pass</c> (the same weights either way), the runtime's kernel choices are in no
    /// stage's: here each changes the step's time or memory.
    /// </summary>
    public static IReadOnlyList<string> ConfigKeys { get; } =
        [.. TrainStage.ConfigKeys, "train.fused_backward_pass", "latents.resolution", "runtime.device", "runtime.threads", .. MeasurementRuntimeKeys,
            "benchmark.warmup_steps", "benchmark.timed_steps"];

    /// <summary>The cells of <paramref name="config"/>'s benchmark section: every combination, precision outermost, method innermost.</summary>
    /// <exception cref="ConfigException">A list of the section is empty.</exception>
    public static IReadOnlyList<BenchmarkCell> Cells(EffectiveConfig config)
    {
        var section = config.Typed.Benchmark;
        if (section.MixedPrecision.Length == 0 || section.GradientCheckpointing.Length == 0 || section.Resolution.Length == 0 || section.Method.Length == 0)
            throw new ConfigException("benchmark.mixed_precision, benchmark.gradient_checkpointing, benchmark.resolution and benchmark.method each need at least one value");
        if (section.WarmupSteps < 0 || section.TimedSteps < 1)
            throw new ConfigException($"benchmark.warmup_steps ({section.WarmupSteps}) cannot be negative and benchmark.timed_steps ({section.TimedSteps}) must be at least 1");
        return section.MixedPrecision.Distinct()
            .SelectMany(precision => section.GradientCheckpointing.Distinct().SelectMany(checkpointing => section.Resolution.Distinct()
                .SelectMany(resolution => section.Method.Distinct().Select(method => new BenchmarkCell(precision, checkpointing, resolution, method)))))
            .ToList();
    }

    /// <summary>The cell called <paramref name="id"/> in <paramref name="config"/>'s sweep.</summary>
    /// <exception cref="ConfigException">Not a cell id, or not a cell of this config.</exception>
    public static BenchmarkCell Find(EffectiveConfig config, string id)
    {
        var cell = BenchmarkCell.Parse(id);
        var cells = Cells(config);
        return cells.Contains(cell) ? cell
            : throw new ConfigException($"cell '{id}' is not part of this config's sweep (cells: {string.Join(", ", cells.Select(c => c.Id))}); " +
                "widen benchmark.mixed_precision, benchmark.gradient_checkpointing, benchmark.resolution or benchmark.method to include it");
    }

    /// <summary>
    /// The training config of a cell: the profile with the cell's precision, checkpointing, resolution and method, the benchmark's
    /// batch size, warm-up + timed steps, and no held-out evaluation or intermediate checkpoints (neither is measured).
    /// </summary>
    public static EffectiveConfig CellConfig(EffectiveConfig config, BenchmarkCell cell)
    {
        var section = config.Typed.Benchmark;
        var json = (JObject)config.Json.DeepClone();
        var train = (JObject)json["train"]!;
        train["mixed_precision"] = cell.MixedPrecision;
        train["gradient_checkpointing"] = cell.GradientCheckpointing;
        train["method"] = cell.Method;
        train["max_train_steps"] = section.WarmupSteps + section.TimedSteps;
        if (section.BatchSize > 0) train["train_batch_size"] = section.BatchSize;
        train["heldout_max_items"] = 0;
        train["validation_steps"] = 0;
        train["validation_prompts"] = new JArray(); // sampling would be timed as training
        train["checkpointing_steps"] = 0;
        train["checkpoints_total_limit"] = 1;
        json["latents"]!["resolution"] = cell.Pixels(config.Typed.Latents.Resolution);
        var typed = json.ToObject<RunConfig>(ConfigSchema.Serializer)!;
        return new EffectiveConfig(typed, JObject.FromObject(typed, ConfigSchema.Serializer), config.SourcePath);
    }

    /// <summary>Plans one cell: its config, upstream artifacts and fingerprint, and whether its result is cached.</summary>
    public static CellPlan Plan(EffectiveConfig config, BenchmarkCell cell, ArtifactStore store, FileHashCache hashes)
    {
        var cellConfig = CellConfig(config, cell);
        var plans = new Planner(Upstream, store, hashes).Plan(cellConfig);
        var errors = plans.Where(p => p.Status == StageStatus.Error).SelectMany(p => p.Reasons.Select(r => $"{p.Stage.Name}: {r}")).ToList();
        if (errors.Count > 0)
            return new CellPlan(cell, cellConfig, null, plans, errors, store);

        var model = plans.Single(p => p.Stage.Name == "model");
        var latents = plans.Single(p => p.Stage.Name == "latents");
        var inputs = new FingerprintInputs(StageName, SchemaVersion, CellSettings(cellConfig, cell),
            new Dictionary<string, string> { ["model"] = model.Fingerprint!, ["latents"] = latents.Fingerprint! },
            new Dictionary<string, string>());
        return new CellPlan(cell, cellConfig, inputs, plans, [], store);
    }

    /// <summary>The config part of a cell's fingerprint: <see cref="ConfigKeys"/> of its config, and its id.</summary>
    public static JObject CellSettings(EffectiveConfig cellConfig, BenchmarkCell cell)
    {
        var settings = cellConfig.Slice(ConfigKeys);
        settings["benchmark.cell"] = cell.Id;
        return (JObject)CanonicalJson.Sorted(settings);
    }

    /// <summary>
    /// A hash of the settings the sweep reads (the benchmark, model, dataset, latents, train and runtime sections): the
    /// merged result records it, and the report shows only a result whose hash matches the current config's.
    /// </summary>
    public static string ConfigHash(EffectiveConfig config)
    {
        // As a cell sees the config: the keys every cell sets itself (the step count, no evaluations or checkpoints, the
        // benchmark's batch size) do not tell two sweeps apart, so a run that trains longer keeps its sweep.
        var slice = CellConfig(config, BenchmarkCell.Baseline)
            .Slice(["benchmark", "model", "download", "latents", "train", "runtime.device", "runtime.threads", .. MeasurementRuntimeKeys]);
        // Every cell sets the swept keys itself: the same sweep serves a config that differs only in them (the
        // report of a LoRA run shows the sweep made with method=full, and the other way round).
        foreach (string swept in SweptKeys) slice.Remove(swept);
        // How long a cell may run changes no measurement (a timed-out cell is a row either way).
        slice.Remove("benchmark.cell_timeout_seconds");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(CanonicalJson.Serialize(slice))));
    }

    /// <summary>The train keys each cell sets from its own axis values.</summary>
    public static IReadOnlyList<string> SweptKeys { get; } = ["train.mixed_precision", "train.gradient_checkpointing", "train.method"];

    /// <summary>Where the merged result of the store's sweep is.</summary>
    public static string ResultPath(ArtifactStore store) => Path.Combine(store.StageDirectory(StageName), ResultFile);

    /// <summary>The <c>--set</c> override that selects a cell's latent cache, for the commands that build it.</summary>
    public static string ResolutionOverride(EffectiveConfig config, BenchmarkCell cell) =>
        string.Create(CultureInfo.InvariantCulture, $"latents.resolution={cell.Pixels(config.Typed.Latents.Resolution)}");
}
