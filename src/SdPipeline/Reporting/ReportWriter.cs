using SdPipeline.Files;
using SdPipeline.Pipeline;

namespace SdPipeline.Reporting;

/// <summary>Writes the report stage's three files into a folder.</summary>
public static class ReportWriter
{
    /// <summary>The self-contained page with plots and sample grids.</summary>
    public const string HtmlFileName = "report.html";

    /// <summary>The GitHub step summary: tables and text only.</summary>
    public const string MarkdownFileName = "report.md";

    /// <summary>The key figures for machines.</summary>
    public const string SummaryFileName = "summary.json";

    /// <summary>
    /// Writes report.html, report.md and summary.json into <paramref name="folder"/> (created if needed),
    /// each through a temporary file and a rename so no reader sees half a report.
    /// </summary>
    public static ReportFacts Write(ReportInput input, string folder)
    {
        var facts = ReportFacts.From(input);
        Directory.CreateDirectory(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, HtmlFileName), HtmlReportWriter.Render(facts));
        AtomicFile.WriteAllText(Path.Combine(folder, MarkdownFileName), MarkdownReportWriter.Render(facts));
        AtomicFile.WriteAllText(Path.Combine(folder, SummaryFileName), SummaryJsonWriter.Render(facts));
        return facts;
    }
}
