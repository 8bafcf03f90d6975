using SdPipeline.Runtime;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// Times a piece of tensor work: <see cref="Warmup"/> untimed runs, then <see cref="Repeats"/> timed ones, each in
/// its own dispose scope (so no run's tensors outlive it and memory stays flat), with the peak resident and peak anonymous
/// memory of the case.
/// </summary>
/// <param name="warmup">Untimed runs first (allocator, kernel selection and page faults settle in them).</param>
/// <param name="repeats">Timed runs; at least 1.</param>
/// <param name="device">Where the work runs: CUDA work is synchronised before the clock stops.</param>
/// <param name="log">Receives one line per run, for long benchmarks; null for silence.</param>
/// <param name="cancellation">Stops the measurement between runs (a run of a large model takes seconds and cannot be cut short).</param>
public sealed class BenchmarkHarness(int warmup, int repeats, Device? device = null, Action<string>? log = null, CancellationToken cancellation = default)
{
    /// <summary>Untimed runs before the timed ones.</summary>
    public int Warmup { get; } = warmup >= 0 ? warmup : throw new ArgumentOutOfRangeException(nameof(warmup), warmup, "warm-up runs cannot be negative");

    /// <summary>Timed runs.</summary>
    public int Repeats { get; } = repeats >= 1 ? repeats : throw new ArgumentOutOfRangeException(nameof(repeats), repeats, "at least one timed run is needed");

    /// <summary>Runs <paramref name="run"/> <see cref="Warmup"/> + <see cref="Repeats"/> times and times the last <see cref="Repeats"/>.</summary>
    /// <param name="name">The case, for the log.</param>
    /// <param name="run">The work. Tensors it creates are disposed after each run.</param>
    /// <param name="beforeEach">Untimed preparation before every run (e.g. dropping the previous run's gradients).</param>
    /// <exception cref="OperationCanceledException">The cancellation was requested; the run under way when it came was finished first.</exception>
    public Timing Measure(string name, Action run, Action? beforeEach = null)
    {
        bool perCase = ProcessMemory.TryResetPeak();
        using var anonymous = AnonymousMemoryPeak.Start();
        var seconds = new List<double>(Repeats);
        for (int i = 0; i < Warmup + Repeats; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            beforeEach?.Invoke();
            double elapsed;
            using (torch.NewDisposeScope())
            {
                var clock = Stopwatch.StartNew();
                run();
                if (device?.type == DeviceType.CUDA) torch.cuda.synchronize(device);
                elapsed = clock.Elapsed.TotalSeconds;
            }
            bool timed = i >= Warmup;
            if (timed) seconds.Add(elapsed);
            log?.Invoke(timed ? $"{name}: run {i - Warmup + 1}/{Repeats}: {elapsed:0.000} s" : $"{name}: warm-up {i + 1}/{Warmup}: {elapsed:0.000} s");
        }
        anonymous?.Dispose();
        return new Timing(seconds, ProcessMemory.PeakResidentBytes(), perCase, anonymous?.PeakBytes);
    }
}
