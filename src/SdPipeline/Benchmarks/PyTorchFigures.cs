using System.Globalization;
using System.Reflection;
using SdPipeline.Runtime;

namespace SdPipeline.Benchmarks;

/// <summary>PyTorch's time for one benchmark case on one class of CPU: the peer a figure of ours is read against.</summary>
/// <param name="Cpu">The CPU class (<see cref="CpuIdentity.BelongsTo"/>), e.g. <c>AMD EPYC (family 26)</c>.</param>
/// <param name="Work">The case (<see cref="PyTorchFigures.WorkOf"/>), e.g. <c>train_step step 32x32 batch 1</c>.</param>
/// <param name="Seconds">PyTorch's median seconds on its best path for that CPU.</param>
/// <param name="PeakGib">PyTorch's peak resident memory in GiB, where measured.</param>
/// <param name="Setting">Which path that is (fused AdamW, oneDNN off, ...) and where the figure comes from.</param>
/// <param name="AnonymousPeakGib">PyTorch's peak anonymous resident memory in GiB (<see cref="AnonymousMemoryPeak"/>), where measured.</param>
public sealed record PyTorchFigure(string Cpu, string Work, double Seconds, double? PeakGib, string Setting, double? AnonymousPeakGib = null);

/// <summary>
/// The table of PyTorch's figures per CPU class in <c>docs/performance.md</c> (section <see cref="Heading"/>), compiled
/// into the assembly so that <c>sdpipe bench</c> prints the ratio beside each figure and the document stays the one
/// place the figures are kept.
/// </summary>
public static class PyTorchFigures
{
    /// <summary>The heading of the section whose first table holds the figures.</summary>
    public const string Heading = "## PyTorch's figures per CPU";

    private const string ResourceName = "SdPipeline.docs.performance.md";

    /// <summary>Every figure of the compiled-in docs/performance.md.</summary>
    public static IReadOnlyList<PyTorchFigure> All { get; } = Parse(ReadResource());

    /// <summary>
    /// The case a row stands for, in the table's <c>work</c> column form; <paramref name="variant"/> names a way of
    /// running it other than the plain float32 step (<see cref="VariantOf"/>), e.g. <c>train_step step 32x32 batch 1 bf16</c>.
    /// </summary>
    public static string WorkOf(BenchmarkRow row, string variant = "")
    {
        ArgumentNullException.ThrowIfNull(row);
        return string.Create(CultureInfo.InvariantCulture, $"{row.Model} {row.Case} {row.LatentSize}x{row.LatentSize} batch {row.Batch}{variant}");
    }

    /// <summary>
    /// The suffix of the table's <c>work</c> for a run with <paramref name="options"/>: the mixed precision and the
    /// fused backward pass, which PyTorch runs its own way (autocast, post-accumulate-grad hooks), the gradient clipping
    /// (<c>clip_grad_norm_</c>) before AdamW and the EMA after it.
    /// </summary>
    public static string VariantOf(BenchmarkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return (options.MixedPrecision == "no" ? "" : $" {options.MixedPrecision}") + (options.FusedBackwardPass ? " fused backward pass" : "")
            + (options.MaxGradNorm > 0 ? string.Create(CultureInfo.InvariantCulture, $" max_grad_norm {options.MaxGradNorm}") : "") + (options.Ema ? " ema" : "");
    }

    /// <summary>PyTorch's figure for <paramref name="row"/> (run as <paramref name="variant"/>) on <paramref name="cpu"/>'s class, or null when none was measured.</summary>
    public static PyTorchFigure? For(CpuIdentity cpu, BenchmarkRow row, IReadOnlyList<PyTorchFigure>? figures = null, string variant = "")
    {
        ArgumentNullException.ThrowIfNull(cpu);
        string work = WorkOf(row, variant);
        // The most specific class wins: a figure for this very model beats one for its family.
        return (figures ?? All).Where(f => f.Work == work && cpu.BelongsTo(f.Cpu)).MaxBy(f => f.Cpu.Length);
    }

    /// <summary>Reads the first Markdown table after <see cref="Heading"/>: columns CPU, work, PyTorch s, peak GiB, anonymous peak GiB, setting.</summary>
    /// <exception cref="InvalidDataException">The section or table is missing or a row is malformed (a broken build input).</exception>
    public static IReadOnlyList<PyTorchFigure> Parse(string markdown)
    {
        ArgumentNullException.ThrowIfNull(markdown);
        var lines = markdown.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        int heading = lines.FindIndex(l => l.Trim() == Heading);
        if (heading < 0) throw new InvalidDataException($"docs/performance.md has no '{Heading}' section");
        var rows = lines.Skip(heading + 1).SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|')).ToList();
        if (rows.Count < 3) throw new InvalidDataException($"docs/performance.md: the '{Heading}' section has no table of figures");
        var figures = new List<PyTorchFigure>();
        foreach (string row in rows.Skip(2))
        {
            var cells = row.Trim().Trim('|').Split('|').Select(c => c.Replace("`", "", StringComparison.Ordinal).Trim()).ToArray();
            if (cells.Length != 6
                || !double.TryParse(cells[2], NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds))
                throw new InvalidDataException($"docs/performance.md, '{Heading}': cannot read the row '{row}' (CPU | work | seconds | peak GiB | anonymous peak GiB | setting)");
            figures.Add(new PyTorchFigure(cells[0], cells[1], seconds, Gib(cells[3]), cells[5], Gib(cells[4])));
        }
        return figures;
    }

    private static double? Gib(string cell) => double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double gib) ? gib : null;

    private static string ReadResource()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the build did not embed docs/performance.md as {ResourceName}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
