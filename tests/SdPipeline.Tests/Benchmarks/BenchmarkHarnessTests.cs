using SdPipeline.Runtime;
using SdPipeline.Benchmarks;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Benchmarks;

public sealed class BenchmarkHarnessTests
{
    [Test]
    public void Measure_Should_TimeOnlyTheRepeats_When_WarmupsComeFirst()
    {
        // Given a harness with 2 warm-ups and 3 timed runs, and work that counts its calls
        var harness = new BenchmarkHarness(warmup: 2, repeats: 3);
        int runs = 0, preparations = 0;

        // When it measures
        var timing = harness.Measure("count", () => runs++, beforeEach: () => preparations++);

        // Then every run was prepared, only the last three were timed, and the peak memory is known
        Assert.That(runs, Is.EqualTo(5));
        Assert.That(preparations, Is.EqualTo(5));
        Assert.That(timing.Seconds, Has.Count.EqualTo(3));
        Assert.That(timing.Seconds, Is.All.GreaterThanOrEqualTo(0));
        Assert.That(timing.PeakResidentBytes, Is.GreaterThan(0));
    }

    [Test]
    public void Measure_Should_DisposeEachRunsTensors()
    {
        // Given work that keeps a reference to the tensors it creates
        var harness = new BenchmarkHarness(warmup: 1, repeats: 2);
        var created = new List<Tensor>();

        // When it is measured
        harness.Measure("alloc", () => created.Add(torch.ones(64, 64) * 2));

        // Then none of them outlives its run
        Assert.That(created, Has.Count.EqualTo(3));
        Assert.That(created.Select(t => t.IsInvalid), Is.All.True);
    }

    [Test]
    public void Measure_Should_FinishTheRunUnderWay_And_StartNoOther_When_Cancelled()
    {
        // Given a harness of 1 warm-up and 5 timed runs whose second run is interrupted (Ctrl+C, SIGTERM)
        using var cancellation = new CancellationTokenSource();
        var harness = new BenchmarkHarness(warmup: 1, repeats: 5, cancellation: cancellation.Token);
        int runs = 0;

        // When it measures
        Assert.Throws<OperationCanceledException>(() => harness.Measure("cancel", () =>
        {
            if (++runs == 2) cancellation.Cancel();
        }));

        // Then the interrupted run ended, and no further run started
        Assert.That(runs, Is.EqualTo(2));
    }

    [TestCase(-1, 1)]
    [TestCase(0, 0)]
    public void Constructor_Should_Refuse_When_CountsAreOutOfRange(int warmup, int repeats)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _ = new BenchmarkHarness(warmup, repeats));
    }

    [Test]
    public void Median_Should_TakeTheMiddle_When_CountIsOdd_And_TheMeanOfTheMiddlePair_When_Even()
    {
        Assert.That(Statistics.Median([3.0, 1.0, 2.0]), Is.EqualTo(2.0));
        Assert.That(Statistics.Median([4.0, 1.0, 3.0, 2.0]), Is.EqualTo(2.5));
        Assert.That(Statistics.Median([7.0]), Is.EqualTo(7.0));
        Assert.Throws<ArgumentException>(() => Statistics.Median([]));
    }

    [Test]
    public void Timing_Should_ReportMedianAndMin_When_RunsVary()
    {
        var timing = new Timing([0.5, 0.2, 0.9], PeakResidentBytes: 1, PeakIsPerCase: true);

        Assert.That(timing.Median, Is.EqualTo(0.5));
        Assert.That(timing.Min, Is.EqualTo(0.2));
        Assert.That(timing.Max, Is.EqualTo(0.9));
    }

    [Test]
    public void PeakResidentBytes_Should_SeeAnAllocation_And_ResetToTheCurrentSize()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("the per-case peak reset is Linux's /proc/self/clear_refs");

        // Given the peak reset to the current resident size
        Assert.That(ProcessMemory.TryResetPeak(), Is.True);
        long resident = ProcessMemory.ResidentBytes();

        // When 256 MiB are allocated, written and freed, and the peak is then reset again
        using (var block = torch.ones(64L << 20)) { }
        long peak = ProcessMemory.PeakResidentBytes();
        ProcessMemory.TryResetPeak();
        long afterReset = ProcessMemory.PeakResidentBytes();

        // Then the peak saw the block, and the reset forgot it
        Assert.That(peak, Is.GreaterThan(resident + (200L << 20)));
        Assert.That(afterReset, Is.LessThan(peak - (128L << 20)));
    }

    [Test]
    public void MatmulCeiling_Should_MeasureTheRequestedRuns_And_DeriveGflops()
    {
        var ceiling = MatmulCeiling.Measure(torch.CPU, size: 128, repeats: 3, warmup: 1);

        Assert.That(ceiling.Seconds, Has.Count.EqualTo(3));
        Assert.That(ceiling.Flop, Is.EqualTo(2.0 * 128 * 128 * 128));
        Assert.That(ceiling.Gflops, Is.EqualTo(ceiling.Flop / ceiling.MedianSeconds / 1e9));
    }
}
