using System.CommandLine;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;

namespace SdPipeline.Cli.Commands;

/// <summary>
/// <c>sdpipe benchmark</c>: the training sweep (mixed precision × gradient checkpointing × resolution), one process per
/// cell; <c>--list-cells</c>, <c>--cell ID</c> and <c>--merge</c> let a CI matrix spread the cells over runners.
/// </summary>
internal static class BenchmarkCommand
{
    private static readonly Option<bool> ListCells = new("--list-cells") { Description = "Print the sweep's cells (ids; with --json, a JSON array for a CI matrix)." };
    private static readonly Option<bool> Json = new("--json") { Description = "With --list-cells: print a JSON array of {id, mixed_precision, gradient_checkpointing, resolution}." };
    private static readonly Option<string?> Cell = new("--cell") { Description = "Run one cell in this process (an id from --list-cells, e.g. no-off-full); cached like a stage." };
    private static readonly Option<bool> PrintPath = new("--print-path") { Description = "With --cell: print the cell's artifact folder (built or not) and exit." };
    private static readonly Option<bool> Merge = new("--merge") { Description = "Write artifacts/benchmark/benchmark.json and benchmark.md from the cell results present; run nothing." };
    private static readonly Option<bool> Prepare = new("--prepare") { Description = "Build the model, dataset and latent caches the cells need (each in its own process); run no cell." };
    private static readonly Option<bool> Force = new("--force") { Description = "Run the cell (or every cell) even when a result is cached." };

    public static Command Create(CancellationToken cancellation)
    {
        var command = new Command("benchmark",
            "Sweep short training runs over benchmark.mixed_precision x gradient_checkpointing x resolution, one process per cell; " +
            "writes artifacts/benchmark/benchmark.json and a table with each setting's change against fp32, no checkpointing, full resolution.")
        {
            ListCells, Json, Cell, PrintPath, Merge, Prepare, Force,
        };
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result);
            var store = GlobalOptions.Store(result);
            var hashes = GlobalOptions.Hashes(store);
            if (result.GetValue(ListCells)) return ListTheCells(config, result.GetValue(Json));
            if (result.GetValue(Cell) is { } id) return RunCell(result, config, store, hashes, id, cancellation);
            if (result.GetValue(PrintPath)) throw new ConfigException("--print-path needs --cell ID");
            if (result.GetValue(Merge))
            {
                var merged = SweepMerger.Merge(config, store, hashes);
                Print(merged, SweepMerger.Write(merged, store));
                return ExitCodes.Success;
            }
            var runner = new SweepRunner(store, hashes, Launcher(result), Console.WriteLine);
            if (result.GetValue(Prepare))
            {
                runner.Prepare(config, null, cancellation);
                Console.WriteLine("benchmark: the model, dataset and latent caches of every cell are built");
                return ExitCodes.Success;
            }
            var swept = runner.Run(config, result.GetValue(Force), cancellation);
            Print(swept, BenchmarkSweep.ResultPath(store));
            return ExitCodes.Success;
        });
        return command;
    }

    private static int ListTheCells(EffectiveConfig config, bool json)
    {
        var cells = BenchmarkSweep.Cells(config);
        if (json) Console.WriteLine(new JArray(cells.Select(c => c.ToJson())).ToString(Formatting.None));
        else foreach (var cell in cells) Console.WriteLine(cell.Id);
        return ExitCodes.Success;
    }

    private static int RunCell(ParseResult result, EffectiveConfig config, ArtifactStore store, FileHashCache hashes, string id, CancellationToken cancellation)
    {
        var cell = BenchmarkSweep.Find(config, id);
        var plan = BenchmarkSweep.Plan(config, cell, store, hashes);
        if (plan.Errors.Count > 0) throw new StageInputException($"benchmark cell {cell.Id}: {string.Join("; ", plan.Errors)}");
        if (result.GetValue(PrintPath))
        {
            Console.WriteLine(plan.Directory);
            return ExitCodes.Success;
        }
        if (plan.Missing.Count > 0 && !(plan.Check() is { IsValid: true } && !result.GetValue(Force)))
        {
            new SweepRunner(store, hashes, Launcher(result), Console.WriteLine).Prepare(config, [cell], cancellation);
            plan = BenchmarkSweep.Plan(config, cell, store, hashes);
        }
        hashes.Save();
        var outcome = SpectreProgress.Run(progress => CellRunner.Run(plan, result.GetValue(Force), Console.WriteLine, progress, cancellation));
        var cellResult = CellResult.Read(outcome.Directory);
        string where = Path.GetRelativePath(Environment.CurrentDirectory, outcome.Directory);
        Console.WriteLine($"benchmark: cell {cell.Id}: {(outcome.CacheHit ? "cached" : "built")} [{ArtifactStore.Short(outcome.Manifest.Fingerprint)}] — " +
            (cellResult.Status == CellResult.Ok
                ? $"{cellResult.MedianStepSeconds:0.000} s/step, {cellResult.ImagesPerSecond:0.00} images/s, peak memory {cellResult.PeakMemoryBytes / (double)(1L << 30):0.00} GiB"
                : $"{cellResult.Status}: {cellResult.Error}") + $" ({where})");
        return cellResult.Status == CellResult.Ok ? ExitCodes.Success : ExitCodes.StageFailure;
    }

    private static void Print(SweepResult sweep, string path)
    {
        Console.Write(sweep.ToPlainText());
        Console.WriteLine($"written: {path}");
    }

    // The child processes get this invocation's global options, so they plan exactly what this process plans.
    private static SdpipeLauncher Launcher(ParseResult result)
    {
        var global = new List<string> { "--config", result.GetValue(GlobalOptions.Config)!, "--artifacts", result.GetValue(GlobalOptions.Artifacts)! };
        foreach (string set in result.GetValue(GlobalOptions.Set) ?? []) global.AddRange(["--set", set]);
        if (result.GetValue(GlobalOptions.Device) is { } device) global.AddRange(["--device", device]);
        return SdpipeLauncher.ForCurrentProcess(typeof(BenchmarkCommand).Assembly.Location, global, Console.WriteLine, Console.Error.WriteLine);
    }
}
