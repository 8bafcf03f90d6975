using System.Globalization;
using System.Text;

namespace SdPipeline.Benchmarks;

/// <summary>A benchmark report as a plain-text table, for terminals and CI logs alike.</summary>
public static class BenchmarkTable
{
    private static readonly string[] Headers =
        ["model", "case", "latent", "pixels", "batch", "median s", "min s", "GFLOP", "GFLOP/s", "of matmul", "peak RSS", "peak anon", "items/s"];

    /// <summary>The matmul ceiling line, then one line per row.</summary>
    public static string Format(BenchmarkReport report)
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(string.Create(c,
            $"fp32 matmul {report.MatmulBefore.Size}³ ceiling: {report.MatmulGflops:0.0} GFLOP/s " +
            $"(median {report.MatmulBefore.MedianSeconds:0.000} s before, {report.MatmulAfter.MedianSeconds:0.000} s after the model cases); " +
            $"{report.Machine.Threads} threads on {report.Machine.CpuModel}"));
        var lines = report.Rows.Select(row => new[]
        {
            row.Model,
            row.Case + (row.Derived ? "*" : ""),
            $"{row.LatentSize}x{row.LatentSize}",
            row.ImageSize.ToString(c),
            row.Batch.ToString(c),
            row.MedianSeconds.ToString("0.000", c),
            row.MinSeconds.ToString("0.000", c),
            row.Gflop.ToString("0.0", c),
            row.Gflops.ToString("0.0", c),
            row.RatioToMatmul.ToString("0%", c),
            (row.PeakRssBytes / (double)(1L << 30)).ToString("0.00", c) + " GiB",
            row.PeakAnonymousBytes is long anonymous ? (anonymous / (double)(1L << 30)).ToString("0.00", c) + " GiB" : "-",
            row.ItemsPerSecond.ToString("0.000", c),
        }).ToList();
        int[] widths = Headers.Select((h, i) => lines.Select(l => l[i].Length).Append(h.Length).Max()).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((cell, i) => i < 2 ? cell.PadRight(widths[i]) : cell.PadLeft(widths[i]))).TrimEnd();
        text.AppendLine(Line(Headers));
        foreach (var line in lines) text.AppendLine(Line(line));
        if (report.Rows.Any(r => r.Derived)) text.AppendLine("* computed from the rows above it (times and FLOPs added), not timed itself");
        if (report.Rows.Any(r => r.PeakAnonymousBytes is not null))
            text.AppendLine("peak anon: anonymous memory only (tensors, allocator caches, runtime heaps), without the libraries' file pages, whose residency depends on the page cache");
        if (report.Rows.Any(r => r.RatioToMatmul > 1))
            text.AppendLine("above 100% of matmul: GFLOP counts direct convolutions; the VAE's 3x3 convolutions in inference use Winograd's F(2x2,3x3), 4/9 of the multiplications");
        foreach (var peer in report.PyTorch)
        {
            string memory = peer.PyTorchPeakGib is { } gib ? string.Create(c, $", peak {peer.PeakGib:0.00} against {gib:0.00} GiB") : "";
            if (peer is { AnonymousPeakGib: { } ours, PyTorchAnonymousPeakGib: { } theirs })
                memory += string.Create(c, $" (anonymous {ours:0.00} against {theirs:0.00} GiB)");
            text.AppendLine(string.Create(c,
                $"PyTorch, {peer.Work}: {peer.PyTorchSeconds:0.00} s ({peer.PyTorchSetting}; {peer.PyTorchCpu}) against {peer.Seconds:0.00} s here: {peer.TimeRatio:0.00}x its time{memory}"));
        }
        if (report.PyTorch.Count == 0)
            text.AppendLine($"PyTorch: no figure for these cases on {report.Machine.CpuModel} in docs/performance.md ('{PyTorchFigures.Heading}')");
        if (report.Summary is { Count: > 0 } summary)
            text.AppendLine(string.Join(", ", summary.Select(kv => string.Create(c, $"{kv.Key} {kv.Value:0.###}"))));
        return text.ToString();
    }
}
