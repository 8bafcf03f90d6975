using System.Globalization;
using System.Text;
using Newtonsoft.Json;
using SdPipeline.Pipeline;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// <c>benchmark.json</c>: every cell of a config's sweep — measured, failed, or not run — with its change against the
/// baseline (fp32, no checkpointing, full resolution), and each setting's effect on its own. Its content depends only
/// on the cell results, so merging the same results twice writes the same file. A LoRA cell one step from the baseline
/// (<c>no-off-full-lora</c>) gives the memory and step-time difference of LoRA against the full fine-tune.
/// </summary>
public sealed record SweepResult
{
    /// <summary>The JSON layout version.</summary>
    public const int CurrentSchemaVersion = 1;

    /// <summary>The JSON layout version.</summary>
    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary><see cref="BenchmarkSweep.ConfigHash"/> of the config the sweep belongs to.</summary>
    public required string ConfigHash { get; init; }

    /// <summary>The baseline cell's id.</summary>
    public string Baseline { get; init; } = BenchmarkCell.Baseline.Id;

    /// <summary>Warm-up steps per cell (excluded).</summary>
    public required int WarmupSteps { get; init; }

    /// <summary>Timed steps per cell.</summary>
    public required int TimedSteps { get; init; }

    /// <summary>The CPUs the cells ran on (more than one when a CI matrix spread them).</summary>
    public IReadOnlyList<string> Machines { get; init; } = [];

    /// <summary>The devices the cells trained on.</summary>
    public IReadOnlyList<string> Devices { get; init; } = [];

    /// <summary>One row per cell, in sweep order.</summary>
    public required IReadOnlyList<SweepRow> Cells { get; init; }

    /// <summary>Each setting's effect on its own (the cells one setting away from the baseline).</summary>
    public required IReadOnlyList<SweepEffect> Effects { get; init; }

    /// <summary>Merges <paramref name="results"/> (by cell id; a cell without one is not run) for the sweep of <paramref name="cells"/>.</summary>
    /// <param name="cells">The sweep's cells, in order.</param>
    /// <param name="results">The results found, with the fingerprint of the artifact each came from.</param>
    /// <param name="configHash">The config's <see cref="BenchmarkSweep.ConfigHash"/>.</param>
    /// <param name="warmupSteps">Warm-up steps per cell.</param>
    /// <param name="timedSteps">Timed steps per cell.</param>
    public static SweepResult From(IReadOnlyList<BenchmarkCell> cells, IReadOnlyDictionary<string, (CellResult Result, string Fingerprint)> results,
        string configHash, int warmupSteps, int timedSteps)
    {
        CellResult? baseline = results.TryGetValue(BenchmarkCell.Baseline.Id, out var b) && b.Result.Status == CellResult.Ok ? b.Result : null;
        double? Change(double? value, double? reference) => value is { } v && reference is { } r && r > 0 ? v / r - 1 : null;

        var rows = cells.Select(cell =>
        {
            if (!results.TryGetValue(cell.Id, out var found))
                return new SweepRow
                {
                    Id = cell.Id, MixedPrecision = cell.MixedPrecision, GradientCheckpointing = cell.GradientCheckpointing,
                    Resolution = cell.Resolution, Method = cell.Method, Status = SweepRow.NotRun,
                };
            var result = found.Result;
            // A change against a baseline measured on another machine (a CI matrix spreads the cells) would compare hardware, not settings.
            bool ok = result.Status == CellResult.Ok && (baseline is null || SameMachine(result, baseline));
            return new SweepRow
            {
                Id = cell.Id,
                MixedPrecision = cell.MixedPrecision,
                GradientCheckpointing = cell.GradientCheckpointing,
                Resolution = cell.Resolution,
                Method = cell.Method,
                ResolutionPixels = result.ResolutionPixels,
                Status = result.Status,
                Error = result.Error,
                MedianStepSeconds = result.MedianStepSeconds,
                ImagesPerSecond = result.ImagesPerSecond,
                PeakMemoryBytes = result.PeakMemoryBytes,
                EstimateBytes = result.EstimateBytes,
                FinalLoss = result.FinalLoss,
                TimeChange = ok ? Change(result.MedianStepSeconds, baseline?.MedianStepSeconds) : null,
                MemoryChange = ok ? Change(result.PeakMemoryBytes, baseline?.PeakMemoryBytes) : null,
                BatchSize = result.BatchSize,
                Machine = result.CpuModel is null ? null : $"{result.CpuModel} ({result.Device})",
                Fingerprint = ArtifactStore.Short(found.Fingerprint),
            };
        }).ToList();

        var effects = rows
            .Select(row => (Row: row, Cell: new BenchmarkCell(row.MixedPrecision, row.GradientCheckpointing, row.Resolution, row.Method)))
            .Where(x => x.Cell.Differences.Count == 1)
            .Select(x => new SweepEffect(x.Cell.Differences[0], x.Row.Id, x.Row.TimeChange, x.Row.MemoryChange, Study(x.Cell.Differences[0])))
            .ToList();

        var all = results.Values.Select(r => r.Result).ToList();
        return new SweepResult
        {
            ConfigHash = configHash,
            WarmupSteps = warmupSteps,
            TimedSteps = timedSteps,
            Machines = all.Select(r => r.CpuModel).OfType<string>().Distinct().Order(StringComparer.Ordinal).ToList(),
            Devices = all.Select(r => r.Device).OfType<string>().Distinct().Order(StringComparer.Ordinal).ToList(),
            Cells = rows,
            Effects = effects,
        };
    }

    private static bool SameMachine(CellResult a, CellResult b) => a.CpuModel == b.CpuModel && a.Device == b.Device;

    /// <summary>What the study measured for <paramref name="setting"/> on a T4 (the figures this sweep regenerates).</summary>
    public static string Study(string setting) => setting.Split('=')[0] switch
    {
        "mixed_precision" => "−50% time, −50% memory",
        "gradient_checkpointing" => "−8% memory",
        "resolution" => "−10% time",
        _ => "",
    };

    /// <summary>The result as a table for the report: one row per cell, then notes (baseline, effects, method, failures).</summary>
    public SweepTable ToTable()
    {
        var c = CultureInfo.InvariantCulture;
        string Seconds(double? s) => s is { } v ? v.ToString(v < 10 ? "0.000" : "0.0", c) : "—";
        string Gib(long? bytes) => bytes is { } b ? (b / (double)(1L << 30)).ToString("0.00", c) : "—";
        string Number(double? value, string format) => value is { } v ? v.ToString(format, c) : "—";

        var columns = new[]
        {
            "cell", "precision", "checkpointing", "resolution", "method", "status", "step time (s)", "Δ time", "images/s",
            "peak memory (GiB)", "Δ memory", "pre-flight estimate (GiB)", "final loss",
        };
        var rows = Cells.Select(row => (IReadOnlyList<string>)
        [
            row.Id + (row.Id == Baseline ? " (baseline)" : ""),
            row.MixedPrecision == "no" ? "fp32" : row.MixedPrecision,
            row.GradientCheckpointing ? "on" : "off",
            row.ResolutionPixels is { } px ? $"{row.Resolution} ({px} px)" : row.Resolution,
            row.Method,
            row.Status == SweepRow.NotRun ? "not run" : row.Status,
            Seconds(row.MedianStepSeconds),
            Percent(row.TimeChange),
            Number(row.ImagesPerSecond, "0.00"),
            Gib(row.PeakMemoryBytes),
            Percent(row.MemoryChange),
            Gib(row.EstimateBytes),
            Number(row.FinalLoss, "0.0000"),
        ]).ToList();

        var notes = new List<string>
        {
            $"Baseline: {Baseline} (fp32, no gradient checkpointing, full resolution, full fine-tune); Δ is each cell's change against it.",
        };
        foreach (var effect in Effects)
            notes.Add($"{effect.Setting} alone ({effect.Cell}): time {Percent(effect.TimeChange)}, peak memory {Percent(effect.MemoryChange)}" +
                (effect.Study.Length > 0 ? $" — the study on a T4 GPU: {effect.Study}." : "."));
        // The step time and images/s are for the benchmark's batch, which need not be the trained run's.
        var batches = Cells.Select(r => r.BatchSize).OfType<int>().Distinct().Order().ToList();
        string batch = batches.Count == 0 ? "" : $" at batch {string.Join(", ", batches)}";
        notes.Add($"Each cell is a short run of the real training loop in its own process{batch}: {WarmupSteps} warm-up step(s) excluded, " +
            $"the median of {TimedSteps} timed step(s). Peak memory is the whole process's peak resident set on the CPU (runtime and model loading included); " +
            "on CUDA the largest use nvidia-smi reported for the process, sampled once per step (the CUDA context and the allocator's cached blocks " +
            "included, so above torch.cuda.max_memory_allocated); the estimate is the train stage's pre-flight estimate for the same run.");
        if (Machines.Count > 0 || Devices.Count > 0)
            notes.Add($"Measured on {string.Join("; ", Machines)} (device {string.Join(", ", Devices)}).");
        if (Machines.Count > 1 || Devices.Count > 1)
            foreach (var row in Cells.Where(r => r.Status == CellResult.Ok && r.TimeChange is null && r.Id != Baseline && r.Machine is not null))
                notes.Add($"{row.Id} ran on {row.Machine}: not the baseline's machine, so it has no Δ.");
        foreach (var row in Cells.Where(r => r.Status is not (CellResult.Ok or SweepRow.NotRun)))
            notes.Add($"{row.Id}: {row.Status}{(row.Error is { Length: > 0 } e ? $" — {FirstLine(e)}" : "")}");
        int notRun = Cells.Count(r => r.Status == SweepRow.NotRun);
        if (notRun > 0) notes.Add($"{notRun} cell(s) not run: `sdpipe benchmark` runs them (`--cell ID` one at a time).");
        return new SweepTable(columns, rows, notes);
    }

    /// <summary>The table as Markdown (a GitHub table, then the notes as a list).</summary>
    public string ToMarkdown()
    {
        var table = ToTable();
        var md = new StringBuilder();
        md.AppendLine("| " + string.Join(" | ", table.Columns) + " |");
        md.AppendLine("|" + string.Concat(table.Columns.Select((_, i) => i < 6 ? " --- |" : " ---: |")));
        foreach (var row in table.Rows) md.AppendLine("| " + string.Join(" | ", row.Select(cell => cell.Replace("|", "\\|"))) + " |");
        md.AppendLine();
        foreach (string note in table.Notes) md.AppendLine($"- {note}");
        return md.ToString();
    }

    /// <summary>The table as aligned plain text, for terminals and CI logs.</summary>
    public string ToPlainText()
    {
        var table = ToTable();
        int[] widths = table.Columns.Select((h, i) => table.Rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        string Line(IReadOnlyList<string> cells) =>
            string.Join("  ", cells.Select((cell, i) => i < 6 ? cell.PadRight(widths[i]) : cell.PadLeft(widths[i]))).TrimEnd();
        var text = new StringBuilder();
        text.AppendLine(Line(table.Columns));
        foreach (var row in table.Rows) text.AppendLine(Line(row));
        foreach (string note in table.Notes) text.AppendLine(note);
        return text.ToString();
    }

    /// <summary>The result as indented snake_case JSON.</summary>
    public string ToJson() => JsonConvert.SerializeObject(this, CellResult.JsonSettings);

    /// <summary>Reads a <c>benchmark.json</c>.</summary>
    /// <exception cref="InvalidDataException">Unreadable.</exception>
    public static SweepResult Read(string path)
    {
        try
        {
            return JsonConvert.DeserializeObject<SweepResult>(File.ReadAllText(path), CellResult.JsonSettings)
                ?? throw new InvalidDataException($"{path} is empty");
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            throw new InvalidDataException($"{path} cannot be read: {e.Message}", e);
        }
    }

    /// <summary>+12% / −8% / 0%, or — when unknown.</summary>
    public static string Percent(double? change) => change switch
    {
        null => "—",
        var v when Math.Round(v.Value * 100) == 0 => "0%",
        var v => (v > 0 ? "+" : "−") + Math.Abs(v.Value * 100).ToString("0", CultureInfo.InvariantCulture) + "%",
    };

    private static string FirstLine(string text) => text.Split('\n', 2)[0].Trim();
}
