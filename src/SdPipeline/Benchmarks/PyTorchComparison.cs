using SdPipeline.Runtime;

namespace SdPipeline.Benchmarks;

/// <summary>One of our rows beside PyTorch's figure for the same work on the same class of CPU.</summary>
/// <param name="Work">The case (<see cref="PyTorchFigures.WorkOf"/>).</param>
/// <param name="Seconds">Our median seconds.</param>
/// <param name="PyTorchSeconds">PyTorch's.</param>
/// <param name="PeakGib">Our peak resident memory in GiB.</param>
/// <param name="PyTorchPeakGib">PyTorch's, where measured.</param>
/// <param name="PyTorchCpu">The CPU class PyTorch's figure was measured on.</param>
/// <param name="PyTorchSetting">PyTorch's path (fused AdamW, oneDNN off, ...).</param>
/// <param name="AnonymousPeakGib">Our peak anonymous resident memory in GiB, where sampled.</param>
/// <param name="PyTorchAnonymousPeakGib">PyTorch's, where measured.</param>
public sealed record PyTorchComparison(string Work, double Seconds, double PyTorchSeconds, double PeakGib, double? PyTorchPeakGib,
    string PyTorchCpu, string PyTorchSetting, double? AnonymousPeakGib = null, double? PyTorchAnonymousPeakGib = null)
{
    /// <summary>Our time over PyTorch's: below 1 is faster.</summary>
    public double TimeRatio => Seconds / PyTorchSeconds;

    /// <summary>The comparisons for every row PyTorch has a figure for on <paramref name="cpu"/>'s class.</summary>
    public static IReadOnlyList<PyTorchComparison> Of(IEnumerable<BenchmarkRow> rows, CpuIdentity cpu, IReadOnlyList<PyTorchFigure>? figures = null, string variant = "") =>
        rows.Select(row => (row, figure: PyTorchFigures.For(cpu, row, figures, variant)))
            .Where(p => p.figure is not null && !p.row.Derived)
            .Select(p => new PyTorchComparison(PyTorchFigures.WorkOf(p.row, variant), p.row.MedianSeconds, p.figure!.Seconds,
                p.row.PeakRssBytes / (double)(1L << 30), p.figure.PeakGib, p.figure.Cpu, p.figure.Setting,
                p.row.PeakAnonymousBytes / (double)(1L << 30), p.figure.AnonymousPeakGib))
            .ToList();
}
