using SdPipeline.Benchmarks.Sweep;

namespace SdPipeline.Tests.Benchmarks.Sweep;

/// <summary>Merging cell results into the sweep's table: deltas against the baseline, failures and missing cells.</summary>
public sealed class SweepResultTests
{
    internal static CellResult Result(string id, string status = CellResult.Ok, double? seconds = null, long? peak = null, string? error = null)
    {
        var cell = BenchmarkCell.Parse(id);
        bool ok = status == CellResult.Ok;
        return new CellResult
        {
            Id = id,
            MixedPrecision = cell.MixedPrecision,
            GradientCheckpointing = cell.GradientCheckpointing,
            Resolution = cell.Resolution,
            ResolutionPixels = cell.Resolution == "full" ? 64 : 32,
            Status = status,
            Error = error,
            BatchSize = 16,
            GradientAccumulationSteps = 1,
            WarmupSteps = 2,
            TimedSteps = 5,
            StepSeconds = ok ? [seconds!.Value] : [],
            MedianStepSeconds = ok ? seconds : null,
            ImagesPerSecond = ok ? 16 / seconds : null,
            PeakMemoryBytes = ok ? peak : null,
            FinalLoss = ok ? 0.5 : null,
            EstimateBytes = 1L << 30,
            Device = "cpu",
            CpuModel = "Test CPU",
        };
    }

    private static readonly IReadOnlyList<BenchmarkCell> Cells =
        new[] { "no-off-full", "no-off-half", "no-on-full", "no-on-half", "bf16-off-full", "fp16-off-full" }.Select(BenchmarkCell.Parse).ToList();

    private static SweepResult Merge(params CellResult[] results) =>
        SweepResult.From(Cells, results.ToDictionary(r => r.Id, r => (r, new string('a', 64))), "hash", 2, 5);

    [Test]
    public void From_Should_ComputeEachCellsChange_AgainstTheBaseline()
    {
        // Given the baseline at 2 s and 1000 MB, and cells faster, smaller, or both
        var result = Merge(
            Result("no-off-full", seconds: 2.0, peak: 1000),
            Result("no-off-half", seconds: 1.5, peak: 900),
            Result("no-on-full", seconds: 2.5, peak: 600),
            Result("bf16-off-full", seconds: 4.0, peak: 1000));

        // Then the changes are fractions of the baseline's figures
        var rows = result.Cells.ToDictionary(r => r.Id);
        Assert.That(rows["no-off-full"].TimeChange, Is.EqualTo(0.0));
        Assert.That(rows["no-off-half"].TimeChange, Is.EqualTo(-0.25).Within(1e-12));
        Assert.That(rows["no-off-half"].MemoryChange, Is.EqualTo(-0.10).Within(1e-12));
        Assert.That(rows["no-on-full"].TimeChange, Is.EqualTo(0.25).Within(1e-12));
        Assert.That(rows["no-on-full"].MemoryChange, Is.EqualTo(-0.40).Within(1e-12));
        Assert.That(rows["bf16-off-full"].TimeChange, Is.EqualTo(1.0).Within(1e-12));
        Assert.That(rows["bf16-off-full"].MemoryChange, Is.EqualTo(0.0));
        Assert.That(rows["no-off-half"].Fingerprint, Is.EqualTo(new string('a', 16)));
    }

    [Test]
    public void From_Should_MarkMissingCellsNotRun_And_KeepFailures_WithoutChanges()
    {
        var result = Merge(
            Result("no-off-full", seconds: 2.0, peak: 1000),
            Result("fp16-off-full", CellResult.Timeout, error: "stopped after benchmark.cell_timeout_seconds = 60 s"),
            Result("no-on-full", CellResult.OutOfMemory, error: "DefaultCPUAllocator: can't allocate memory"));

        var rows = result.Cells.ToDictionary(r => r.Id);
        Assert.That(rows["no-off-half"].Status, Is.EqualTo(SweepRow.NotRun));
        Assert.That(rows["no-off-half"].Fingerprint, Is.Null);
        Assert.That(rows["fp16-off-full"].Status, Is.EqualTo(CellResult.Timeout));
        Assert.That(rows["no-on-full"].Status, Is.EqualTo(CellResult.OutOfMemory));
        Assert.That(rows["no-on-full"].Error, Does.Contain("can't allocate"));
        Assert.That(new[] { rows["fp16-off-full"], rows["no-on-full"], rows["no-off-half"] }.Select(r => r.TimeChange), Is.All.Null);
        var table = result.ToTable();
        Assert.That(table.Notes, Has.Some.Contains("no-on-full: oom — DefaultCPUAllocator"));
        Assert.That(table.Notes, Has.Some.Contains("3 cell(s) not run"));
        Assert.That(table.Rows.Single(r => r[0] == "no-off-half")[5], Is.EqualTo("not run"));
    }

    [Test]
    public void From_Should_GiveNoChanges_When_TheBaselineDidNotMeasure()
    {
        var result = Merge(Result("no-off-full", CellResult.Failed, error: "boom"), Result("no-off-half", seconds: 1.0, peak: 10));

        Assert.That(result.Cells.Select(r => r.TimeChange), Is.All.Null);
        Assert.That(result.Effects.Single(e => e.Setting == "resolution=half").TimeChange, Is.Null);
    }

    [Test]
    public void From_Should_GiveNoChange_When_ACellRanOnAnotherMachineThanTheBaseline()
    {
        // Given a CI matrix that ran the baseline on one CPU and a cell on another
        var result = Merge(
            Result("no-off-full", seconds: 2.0, peak: 1000),
            Result("no-off-half", seconds: 1.0, peak: 900) with { CpuModel = "Other CPU" },
            Result("no-on-full", seconds: 2.5, peak: 600));

        // Then only the cell measured on the baseline's machine is compared with it
        var rows = result.Cells.ToDictionary(r => r.Id);
        Assert.That((rows["no-off-half"].TimeChange, rows["no-off-half"].MemoryChange), Is.EqualTo(((double?)null, (double?)null)));
        Assert.That(rows["no-on-full"].TimeChange, Is.EqualTo(0.25).Within(1e-12));
        Assert.That(result.ToTable().Notes, Has.Some.Contains("no-off-half ran on Other CPU (cpu)"));
    }

    [Test]
    public void Effects_Should_BeTheCellsOneSettingFromTheBaseline_WithTheStudysFigures()
    {
        var result = Merge(
            Result("no-off-full", seconds: 2.0, peak: 1000),
            Result("no-off-half", seconds: 1.8, peak: 1000),
            Result("no-on-half", seconds: 1.0, peak: 500),
            Result("fp16-off-full", seconds: 1.0, peak: 500));

        // no-on-half differs in two settings: it is a row, not an effect
        Assert.That(result.Effects.Select(e => e.Setting), Is.EquivalentTo(new[]
        {
            "resolution=half", "gradient_checkpointing=on", "mixed_precision=bf16", "mixed_precision=fp16",
        }));
        var half = result.Effects.Single(e => e.Setting == "resolution=half");
        Assert.That(half.Cell, Is.EqualTo("no-off-half"));
        Assert.That(half.TimeChange, Is.EqualTo(-0.1).Within(1e-12));
        Assert.That(half.Study, Is.EqualTo("−10% time"));
        var table = result.ToTable();
        Assert.That(table.Notes, Has.Some.EqualTo("resolution=half alone (no-off-half): time −10%, peak memory 0% — the study on a T4 GPU: −10% time."));
        Assert.That(table.Notes, Has.Some.StartsWith("mixed_precision=fp16 alone (fp16-off-full): time −50%, peak memory −50%"));
    }

    [Test]
    public void ToTable_Should_HaveOneFullRowPerCell_And_RenderAsMarkdownAndText()
    {
        var result = Merge(Result("no-off-full", seconds: 0.3712, peak: 3L << 30), Result("bf16-off-full", seconds: 0.7424, peak: 3L << 30));

        var table = result.ToTable();
        table.Validate();
        Assert.That(table.Rows, Has.Count.EqualTo(Cells.Count));
        var baseline = table.Rows[0];
        Assert.That(baseline[0], Is.EqualTo("no-off-full (baseline)"));
        Assert.That(baseline.Skip(1).Take(6), Is.EqualTo(new[] { "fp32", "off", "full (64 px)", "full", "ok", "0.371" }));
        Assert.That(baseline[9], Is.EqualTo("3.00"));
        Assert.That(table.Rows[4][7], Is.EqualTo("+100%"));
        string markdown = result.ToMarkdown();
        Assert.That(markdown, Does.StartWith("| cell | precision |").And.Contain("| bf16-off-full | bf16 | off | full (64 px) | full | ok | 0.742 | +100% |"));
        Assert.That(result.ToPlainText(), Does.Contain("no-off-full (baseline)"));
    }

    [Test]
    public void ToTable_Should_SayTheBatch_And_WhatPeakMemoryIsOnEachDevice()
    {
        // Given cells measured at batch 16 (the run the report is about may train at another batch)
        var table = Merge(Result("no-off-full", seconds: 2.0, peak: 1000), Result("no-off-half", seconds: 1.0, peak: 900)).ToTable();

        // Then the notes say the batch the step times and images/s are for, and what the memory column measured
        var note = table.Notes.Single(n => n.StartsWith("Each cell is a short run", StringComparison.Ordinal));
        Assert.That(note, Does.Contain("at batch 16"));
        Assert.That(note, Does.Contain("peak resident set").And.Contain("nvidia-smi"));
    }

    [Test]
    public void Json_Should_RoundTrip_And_NotDependOnWhenItWasMerged()
    {
        var first = Merge(Result("no-off-full", seconds: 2.0, peak: 1000));
        var second = Merge(Result("no-off-full", seconds: 2.0, peak: 1000));

        Assert.That(second.ToJson(), Is.EqualTo(first.ToJson()));
        using var temp = new Support.TempFolder();
        File.WriteAllText(temp.File("benchmark.json"), first.ToJson());
        var read = SweepResult.Read(temp.File("benchmark.json"));
        Assert.That(read.ToJson(), Is.EqualTo(first.ToJson()));
        Assert.That(read.Cells[0].MedianStepSeconds, Is.EqualTo(2.0));
    }

    [TestCase(0.004, "0%")]
    [TestCase(-0.5, "−50%")]
    [TestCase(0.126, "+13%")]
    [TestCase(null, "—")]
    public void Percent_Should_SignTheChange(double? change, string expected)
    {
        Assert.That(SweepResult.Percent(change), Is.EqualTo(expected));
    }
}
