using System.Text.RegularExpressions;
using SdPipeline.Config;
using SdPipeline.Reporting;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Config;

/// <summary>The README documents the configuration as the code defines it.</summary>
public sealed class ReadmeTests
{
    [Test]
    public void Readme_Should_ContainTheGeneratedConfigurationReference()
    {
        string readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));

        // Regenerate with: sdpipe config --defaults --markdown
        foreach (string line in ConfigDocumentation.Markdown().Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)))
            Assert.That(readme, Does.Contain(line), "README.md's configuration tables are out of date; paste `sdpipe config --defaults --markdown`");
    }

    [Test]
    public void Readme_Should_ListEveryDeliverable_TheReportStageWrites()
    {
        string readme = File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));
        // The walkthrough's table under "**4. The result**": one row per file or folder of deliverables/ (ReportStage.Deliverables)
        string table = Regex.Match(readme, @"\*\*4\. The result\*\*.*?\n\n(?<table>(\|[^\n]*\n)+)", RegexOptions.Singleline).Groups["table"].Value;
        var rows = Regex.Matches(table, @"^\| (?<names>[^|]+) \|", RegexOptions.Multiline).Select(m => m.Groups["names"].Value).ToList();

        string[] deliverables =
        [
            SingleFileDeliverable.FileName, "model/", ReportWriter.HtmlFileName, ReportWriter.MarkdownFileName, ReportWriter.SummaryFileName,
            "samples/", ValidationImages.FolderName + "/", TrainStage.LoraFolder + "/",
        ];
        foreach (string name in deliverables)
            Assert.That(rows.Any(r => r.Contains($"`{name}`")), $"README's deliverables table has no row for {name}: {string.Join(" | ", rows)}");
    }
}
