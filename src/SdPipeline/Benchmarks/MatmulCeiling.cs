using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// The machine's practical compute ceiling: the rate of a large fp32 matmul, the best-tuned kernel libtorch has.
/// Measured in the same process as the benchmark it is compared with, because the machine is shared and its speed
/// drifts: ratios within one run are meaningful, absolute times across runs much less so.
/// </summary>
/// <param name="Size">n of the n×n by n×n product.</param>
/// <param name="Seconds">Seconds of each timed product.</param>
public sealed record MatmulCeiling(int Size, IReadOnlyList<double> Seconds)
{
    /// <summary>FLOPs of one product: 2·n³.</summary>
    public double Flop => 2.0 * Size * Size * Size;

    /// <summary>Median seconds of one product.</summary>
    public double MedianSeconds => Statistics.Median(Seconds);

    /// <summary>GFLOP/s at the median.</summary>
    public double Gflops => Flop / MedianSeconds / 1e9;

    /// <summary>
    /// <see cref="Measure"/> with the progress lines every benchmark prints: before its model cases (no
    /// <paramref name="label"/>) and after them (<paramref name="label"/> "after").
    /// </summary>
    public static MatmulCeiling MeasureLogged(Device device, int size, Action<string>? log, string? label = null)
    {
        if (label is null) log?.Invoke($"fp32 matmul {size}³ ...");
        var ceiling = Measure(device, size);
        log?.Invoke($"fp32 matmul {size}³{(label is null ? "" : " " + label)}: {ceiling.Gflops:0.0} GFLOP/s");
        return ceiling;
    }

    /// <summary>Times <paramref name="repeats"/> products of two random fp32 <paramref name="size"/>² matrices after <paramref name="warmup"/> untimed ones.</summary>
    public static MatmulCeiling Measure(Device device, int size = 4096, int repeats = 5, int warmup = 1)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "the matrix size must be positive");
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var generator = new Generator(0, device);
        var a = torch.randn(size, size, generator: generator, device: device);
        var b = torch.randn(size, size, generator: generator, device: device);
        var seconds = new List<double>(repeats);
        for (int i = 0; i < warmup + repeats; i++)
        {
            double elapsed = TimeOne(a, b, device);
            if (i >= warmup) seconds.Add(elapsed);
        }
        return new MatmulCeiling(size, seconds);
    }

    /// <summary>
    /// Seconds of one product <paramref name="a"/>·<paramref name="b"/>: the probe a benchmark interleaves with its own
    /// work, so that the ceiling is measured under the same load as the work it is compared with.
    /// </summary>
    public static double TimeOne(Tensor a, Tensor b, Device device)
    {
        using var _ = torch.no_grad();
        var clock = Stopwatch.StartNew();
        using (var product = a.matmul(b))
            if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
        return clock.Elapsed.TotalSeconds;
    }
}
