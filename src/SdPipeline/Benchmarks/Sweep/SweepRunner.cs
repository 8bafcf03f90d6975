using System.Globalization;
using SdPipeline.Config;
using SdPipeline.Pipeline;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// <c>sdpipe benchmark</c>: builds what the cells need (the model, the dataset, the latent cache at each swept
/// resolution), runs every cell that has no result yet as <c>sdpipe benchmark --cell ID</c> in its own process, records a
/// cell whose process died without a result (killed, timed out, crashed) as a failed row, and merges. Interrupted, it
/// keeps the finished cells; the next run resumes with the rest.
/// </summary>
public sealed class SweepRunner(ArtifactStore store, FileHashCache hashes, SdpipeLauncher launcher, Action<string> log)
{
    /// <summary>Builds, each in its own process, the upstream stages that <paramref name="cells"/> (every cell of <paramref name="config"/> when null) lack.</summary>
    /// <exception cref="StageFailedException">A stage failed.</exception>
    /// <exception cref="StageInputException">A stage's inputs cannot be resolved (a config error).</exception>
    public void Prepare(EffectiveConfig config, IReadOnlyList<BenchmarkCell>? cells, CancellationToken cancellation)
    {
        foreach (var cell in (cells ?? BenchmarkSweep.Cells(config)).DistinctBy(c => c.Resolution))
        {
            // Planned again after each build: the model and the dataset are shared by both resolutions.
            var built = new HashSet<string>();
            while (BenchmarkSweep.Plan(config, cell, store, hashes) is { } plan && (plan.Errors.Count > 0 || plan.Missing.Count > 0))
            {
                if (plan.Errors.Count > 0) throw new StageInputException($"benchmark: {string.Join("; ", plan.Errors)}");
                string stage = plan.Missing[0].Stage.Name;
                string resolution = BenchmarkSweep.ResolutionOverride(config, cell);
                if (!built.Add(stage))
                    throw new StageFailedException($"benchmark: {stage} is still not built for {resolution} after `sdpipe run {stage}` succeeded ({string.Join("; ", plan.Missing[0].Reasons)})");
                log($"benchmark: building {stage} for the {cell.Resolution} resolution: {launcher.Describe(["run", stage], [resolution])}");
                var outcome = launcher.Run(["run", stage], overrides: [resolution], cancellation: cancellation);
                if (outcome.ExitCode != 0)
                    throw new StageFailedException($"benchmark: `sdpipe run {stage} --set {resolution}` failed (exit code {outcome.ExitCode}): " +
                        string.Join(" / ", outcome.Tail.TakeLast(3)));
            }
        }
        hashes.Save();
    }

    /// <summary>Prepares, runs the cells without a result (every cell with <paramref name="force"/>), then merges and writes the result.</summary>
    public SweepResult Run(EffectiveConfig config, bool force, CancellationToken cancellation)
    {
        Prepare(config, null, cancellation);
        var cells = BenchmarkSweep.Cells(config);
        int timeoutSeconds = config.Typed.Benchmark.CellTimeoutSeconds;
        TimeSpan? timeout = timeoutSeconds > 0 ? TimeSpan.FromSeconds(timeoutSeconds) : null;
        for (int i = 0; i < cells.Count; i++)
        {
            var plan = BenchmarkSweep.Plan(config, cells[i], store, hashes);
            string progress = $"benchmark: cell {i + 1}/{cells.Count} {cells[i].Id}";
            bool rerun = force;
            if (!force && plan.Check() is { IsValid: true })
            {
                var cached = CellResult.Read(plan.Directory!);
                // A timeout is the one failure a changed setting can cure without changing the fingerprint.
                rerun = cached.Status == CellResult.Timeout && (timeout is null || cached.TimeoutSeconds < timeoutSeconds);
                if (!rerun)
                {
                    log($"{progress}: cached [{ArtifactStore.Short(plan.Fingerprint!)}] — {Describe(cached)}");
                    continue;
                }
            }

            log($"{progress}: {launcher.Describe(["benchmark", "--cell", cells[i].Id])}");
            var outcome = launcher.Run(rerun ? ["benchmark", "--cell", cells[i].Id, "--force"] : ["benchmark", "--cell", cells[i].Id], timeout, cancellation: cancellation);
            if (plan.Check() is { IsValid: true } && !outcome.TimedOut)
            {
                log($"{progress}: {Describe(CellResult.Read(plan.Directory!))}");
                continue;
            }
            var (status, error) = Classify(outcome, timeoutSeconds);
            log($"{progress}: {status} — {error}");
            CellRunner.RecordFailure(plan, status, error, outcome.TimedOut ? timeoutSeconds : null);
        }
        var result = SweepMerger.Merge(config, store, hashes);
        SweepMerger.Write(result, store);
        return result;
    }

    /// <summary>Why a cell process ended without a result: timeout, out of memory (said so, or killed by SIGKILL), or failed.</summary>
    public static (string Status, string Error) Classify(ChildOutcome outcome, int timeoutSeconds)
    {
        string tail = string.Join("\n", outcome.Tail.Where(l => l.Trim().Length > 0).TakeLast(5));
        if (outcome.TimedOut)
            return (CellResult.Timeout, string.Create(CultureInfo.InvariantCulture, $"stopped after benchmark.cell_timeout_seconds = {timeoutSeconds} s"));
        if (CellRunner.IsOutOfMemory(string.Join("\n", outcome.Tail)))
            return (CellResult.OutOfMemory, tail);
        if (outcome.ExitCode == ChildOutcome.Killed)
            return (CellResult.OutOfMemory, "killed by SIGKILL (most likely the kernel's out-of-memory killer)" + (tail.Length > 0 ? $": {tail}" : ""));
        return (CellResult.Failed, $"exit code {outcome.ExitCode}" + (tail.Length > 0 ? $": {tail}" : ""));
    }

    private static string Describe(CellResult result) => result.Status == CellResult.Ok
        ? string.Create(CultureInfo.InvariantCulture,
            $"{result.MedianStepSeconds:0.000} s/step, {result.ImagesPerSecond:0.00} images/s, peak {result.PeakMemoryBytes / (double)(1L << 30):0.00} GiB")
        : $"{result.Status}: {result.Error?.Split('\n')[0]}";
}
