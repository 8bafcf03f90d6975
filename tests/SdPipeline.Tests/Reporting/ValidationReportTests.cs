using System.Text.RegularExpressions;
using SdPipeline.Images;
using SdPipeline.Reporting;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Reporting;

/// <summary>The validation images as a step × prompt grid in report.html and as a table in report.md.</summary>
public sealed class ValidationReportTests
{
    private static readonly string[] Prompts = ["a red circle on a blue background", "a <b>bold</b> | piped prompt"];

    /// <summary>A run folder with validation passes at <paramref name="steps"/> (noise images; the last prompt at step 0 all black).</summary>
    private static string RunFolder(TempFolder temp, IEnumerable<long> steps)
    {
        foreach (long step in steps)
            ValidationImages.Write(temp.Path, step, Prompts, 7,
                [ReportTestData.Noise(16, (int)step), step == 0 ? ReportTestData.Constant(16, 0, 0, 0) : ReportTestData.Noise(16, 1000 + (int)step)], null);
        return temp.Path;
    }

    [Test]
    public void ValidationImages_Should_ReadBackStepByStep_WithAGridOfEveryPass()
    {
        using var temp = new TempFolder();
        RunFolder(temp, [0, 100, 200]);

        var series = ValidationImages.Read(temp.Path)!;

        Assert.That(series.Prompts, Is.EqualTo(Prompts));
        Assert.That(series.Seed, Is.EqualTo(7));
        Assert.That(series.Steps.Select(s => s.Step), Is.EqualTo(new long[] { 0, 100, 200 }));
        Assert.That(series.Steps[1].Files.Select(f => Path.GetFileName(f!)), Is.EqualTo(new[] { "step-000100-prompt-00.png", "step-000100-prompt-01.png" }));
        var grid = ImageCodec.DecodeRgb(File.ReadAllBytes(Path.Combine(temp.Path, ValidationImages.FolderName, ValidationImages.GridFile)));
        Assert.That((grid.Width, grid.Height), Is.EqualTo((2 * 16 + 3 * 2, 3 * 16 + 4 * 2)), "a column per prompt, a row per step, 2 px between and around");
        Assert.That(Directory.GetFiles(Path.Combine(temp.Path, ValidationImages.FolderName), "*.tmp-*"), Is.Empty);
    }

    [Test]
    public void Html_Should_ShowAStepByPromptGrid_WithAtMostTwelveRows()
    {
        using var temp = new TempFolder();
        var grid = ValidationGrid.From(ValidationImages.Read(RunFolder(temp, Enumerable.Range(0, 15).Select(i => i * 10L)))!);

        string html = HtmlReportWriter.Render(ReportFacts.From(new ReportInput(ReportTestData.Overview) { Validation = grid }));

        var section = Regex.Match(html, "<section id=\"validation\">.*?</section>", RegexOptions.Singleline).Value;
        Assert.That(html, Does.Contain("<a href=\"#validation\">Validation</a>"));
        Assert.That(section, Does.Contain("<th>a red circle on a blue background</th><th>a &lt;b&gt;bold&lt;/b&gt; | piped prompt</th>"));
        var rowSteps = Regex.Matches(section, "<tr><th>(\\d+)</th>").Select(m => long.Parse(m.Groups[1].Value)).ToList();
        Assert.That(rowSteps, Has.Count.EqualTo(ValidationGrid.MaxRowsShown));
        Assert.That(rowSteps[0], Is.EqualTo(0));
        Assert.That(rowSteps[^1], Is.EqualTo(140), "the last pass is always shown");
        Assert.That(rowSteps, Is.Ordered.Ascending);
        Assert.That(Regex.Matches(section, "<img src=\"data:image/png;base64,").Count, Is.EqualTo(2 * ValidationGrid.MaxRowsShown));
        Assert.That(section, Does.Contain("12 of the 15 passes are shown"));
        Assert.That(section, Does.Contain("step 0, “a &lt;b&gt;bold&lt;/b&gt; | piped prompt”: all black"));
    }

    [Test]
    public void Markdown_Should_ListThePassesAndPointToTheGrid()
    {
        using var temp = new TempFolder();
        var grid = ValidationGrid.From(ValidationImages.Read(RunFolder(temp, [0, 50]))!);

        string md = MarkdownReportWriter.Render(ReportFacts.From(new ReportInput(ReportTestData.Overview) { Validation = grid }));

        Assert.That(md, Does.Contain("## Validation"));
        Assert.That(md, Does.Contain("2 passes (step 0 to 50; step 0 is the base model)"));
        Assert.That(md, Does.Contain("`deliverables/validation/grid.png`"));
        Assert.That(md, Does.Contain("| step | a red circle on a blue background | a &lt;b&gt;bold&lt;/b&gt; \\| piped prompt |"));
        Assert.That(md, Does.Contain("| 0 | `step-000000-prompt-00.png` | :warning: all black ("));
        Assert.That(md, Does.Contain("| 50 | `step-000050-prompt-00.png` | `step-000050-prompt-01.png` |"));
        Assert.That(md, Does.Not.Contain("<img"));
    }

    [Test]
    public void Writers_Should_LeaveOutValidation_When_NoPromptsWereSampled()
    {
        var facts = ReportFacts.From(new ReportInput(ReportTestData.Overview));

        Assert.That(HtmlReportWriter.Render(facts), Does.Not.Contain("id=\"validation\"").And.Not.Contain("#validation"));
        Assert.That(MarkdownReportWriter.Render(facts), Does.Not.Contain("## Validation"));
    }
}
