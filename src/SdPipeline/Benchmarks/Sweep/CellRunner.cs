using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Runtime;
using SdPipeline.Training;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// Runs one benchmark cell in this process: the real <c>train</c> stage (<see cref="TrainStage"/>, pre-flight check and
/// <see cref="FineTuner"/> included) on the cell's config, in a scratch folder inside the cell's artifact, then keeps
/// its <c>metrics.jsonl</c> and <c>preflight.json</c> and writes <c>cell.json</c>. A run that fails — out of memory, a
/// refusal by the pre-flight check, an error — is a result too (cached like a measurement), so a sweep shows it as a
/// row and does not run it again; Ctrl+C is not (the next run starts the cell over).
/// </summary>
public static class CellRunner
{
    /// <summary>The scratch folder of the training run inside the cell's partial artifact; deleted when the cell is done.</summary>
    public const string ScratchFolder = "run";

    private static readonly string[] KeptFiles = [FineTuner.MetricsFile, "preflight.json"];

    /// <summary>Runs the cell unless its result is cached (or <paramref name="force"/>), returning its artifact.</summary>
    /// <exception cref="StageFailedException">The model or the latent cache for the cell's resolution is not built.</exception>
    /// <exception cref="OperationCanceledException">Interrupted; nothing is cached.</exception>
    public static BuildOutcome Run(CellPlan plan, bool force, Action<string> log, IProgressSink progress, CancellationToken cancellation)
    {
        if (plan.Inputs is null) throw new StageInputException($"benchmark cell {plan.Cell.Id}: {string.Join("; ", plan.Errors)}");
        return plan.Store.Build(plan.Inputs, plan.Config.Json, (folder, _) =>
        {
            var upstream = plan.UpstreamDirectories();
            // A cell never resumes: the timings of a run cut in two would not be one run's.
            Clear(folder);
            log($"benchmark: cell {plan.Cell.Id}: training {plan.Config.Typed.Train.MaxTrainSteps} steps " +
                $"({plan.Config.Typed.Benchmark.WarmupSteps} warm-up) at {plan.Config.Typed.Latents.Resolution} px, batch {plan.Config.Typed.Train.TrainBatchSize}");
            string scratch = Path.Combine(folder, ScratchFolder);
            Directory.CreateDirectory(scratch);
            var train = TrainStage.Definition;
            var workspace = new StageWorkspace(train, plan.Fingerprint!, scratch, false, upstream, plan.Config, plan.Store, log, progress, cancellation);
            CellResult result;
            try
            {
                new TrainStage().Run(workspace);
                result = Measured(plan, scratch);
            }
            catch (OperationCanceledException)
            {
                throw;
            }
            catch (Exception e)
            {
                // The train stage's only ConfigException is the pre-flight refusal: the run would not fit in memory.
                string status = e is ConfigException || IsOutOfMemory(e.ToString()) ? CellResult.OutOfMemory : CellResult.Failed;
                log($"benchmark: cell {plan.Cell.Id}: {status}: {e.Message}");
                result = Unmeasured(plan, status, $"{e.GetType().Name}: {e.Message}", scratch);
            }
            Keep(scratch, folder);
            result.Write(folder);
            return JObject.Parse(result.ToJson());
        }, force, log, cancellation);
    }

    /// <summary>
    /// Records a cell whose process ended without a result (killed, timed out, crashed) as a result with that failure, so
    /// the sweep's table shows it and the next sweep does not run it again.
    /// </summary>
    public static BuildOutcome RecordFailure(CellPlan plan, string status, string error, int? timeoutSeconds = null) =>
        plan.Store.Build(plan.Inputs!, plan.Config.Json, (folder, _) =>
        {
            string scratch = Path.Combine(folder, ScratchFolder);
            var result = Unmeasured(plan, status, error, Directory.Exists(scratch) ? scratch : null) with { TimeoutSeconds = timeoutSeconds };
            if (Directory.Exists(scratch)) Keep(scratch, folder);
            foreach (string entry in Directory.EnumerateFileSystemEntries(folder).Where(e => !KeptFiles.Contains(Path.GetFileName(e))))
                Delete(entry);
            result.Write(folder);
            return JObject.Parse(result.ToJson());
        }, force: true);

    /// <summary>Whether an error text says the device ran out of memory (libtorch's CPU and CUDA messages, .NET's, the kernel's).</summary>
    public static bool IsOutOfMemory(string text) =>
        text.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
        || text.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase)
        || text.Contains("OutOfMemoryException", StringComparison.Ordinal)
        || text.Contains("std::bad_alloc", StringComparison.Ordinal);

    private static CellResult Measured(CellPlan plan, string scratch)
    {
        var settings = plan.Config.Typed;
        var steps = File.ReadLines(Path.Combine(scratch, FineTuner.MetricsFile))
            .Select(JObject.Parse)
            .Where(line => line.Value<string>("kind") == "train")
            .OrderBy(line => line.Value<long>("step"))
            .ToList();
        var timed = steps.Where(line => line.Value<long>("step") > settings.Benchmark.WarmupSteps).ToList();
        if (timed.Count == 0) throw new InvalidDataException($"benchmark: cell {plan.Cell.Id}: metrics.jsonl has no timed step");
        var seconds = timed.Select(line => line.Value<double>("step_time_s")).ToList();
        double median = Statistics.Median(seconds);
        int images = settings.Train.TrainBatchSize * Math.Max(1, settings.Train.GradientAccumulationSteps);
        return Unmeasured(plan, CellResult.Ok, null, scratch) with
        {
            StepSeconds = seconds,
            MedianStepSeconds = median,
            ImagesPerSecond = Math.Round(images / median, 3),
            PeakMemoryBytes = steps.Max(line => line.Value<long?>("peak_memory_bytes")),
            FinalLoss = steps[^1].Value<double>("loss"),
        };
    }

    private static CellResult Unmeasured(CellPlan plan, string status, string? error, string? scratch)
    {
        var settings = plan.Config.Typed;
        JObject? estimate = null;
        string? preflight = scratch is null ? null : Path.Combine(scratch, "preflight.json");
        if (preflight is not null && File.Exists(preflight))
            estimate = JObject.Parse(File.ReadAllText(preflight))["estimate"] as JObject;
        double? totalGib = estimate?.Value<double?>("total_gib");
        return new CellResult
        {
            Id = plan.Cell.Id,
            MixedPrecision = plan.Cell.MixedPrecision,
            GradientCheckpointing = plan.Cell.GradientCheckpointing,
            Resolution = plan.Cell.Resolution,
            Method = plan.Cell.Method,
            ResolutionPixels = settings.Latents.Resolution,
            Status = status,
            Error = error,
            BatchSize = settings.Train.TrainBatchSize,
            GradientAccumulationSteps = Math.Max(1, settings.Train.GradientAccumulationSteps),
            WarmupSteps = settings.Benchmark.WarmupSteps,
            TimedSteps = settings.Benchmark.TimedSteps,
            EstimateBytes = totalGib is { } gib ? (long)(gib * (1L << 30)) : null,
            Estimate = estimate,
            Device = settings.Runtime.Device,
            CpuModel = CpuModel.Name,
            FinishedUtc = DateTime.UtcNow,
        };
    }

    // The training run's measurements stay with the result; its model, checkpoints and pipeline folder do not.
    private static void Keep(string scratch, string folder)
    {
        foreach (string name in KeptFiles)
        {
            string source = Path.Combine(scratch, name);
            if (File.Exists(source)) File.Move(source, Path.Combine(folder, name), overwrite: true);
        }
        Delete(scratch);
    }

    private static void Clear(string folder)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(folder)) Delete(entry);
    }

    // A link (the pipeline folder links the base model's components) is removed, never followed.
    private static void Delete(string path)
    {
        if (Directory.Exists(path) && new DirectoryInfo(path).LinkTarget is null) Directory.Delete(path, recursive: true);
        else File.Delete(path);
    }
}
