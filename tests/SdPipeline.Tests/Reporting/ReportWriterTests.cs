using System.Text.RegularExpressions;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Config;
using SdPipeline.Images;
using SdPipeline.Reporting;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Reporting;

public sealed class ReportWriterTests
{
    private static readonly Lazy<ReportFacts> FullFacts = new(() => ReportFacts.From(ReportTestData.Full()));

    [Test]
    public void Write_Should_WriteTheThreeFiles_And_NoTemporaries()
    {
        using var temp = new TempFolder();
        string folder = Path.Combine(temp.Path, "report");

        ReportWriter.Write(ReportTestData.Full(), folder);

        Assert.That(Directory.GetFiles(folder).Select(Path.GetFileName).Order(),
            Is.EqualTo(new[] { "report.html", "report.md", "summary.json" }));
    }

    [Test]
    public void Markdown_Should_HoldTheTables_And_NoImages()
    {
        string md = MarkdownReportWriter.Render(FullFacts.Value);

        Assert.Multiple(() =>
        {
            Assert.That(md, Does.Contain("| model | `builtin:tiny` |"));
            Assert.That(md, Does.Contain("| git commit | `0123456789abcdef0123456789abcdef01234567` |"));
            Assert.That(md, Does.Contain("| stage | fingerprint | this run | build time (s) |"));
            Assert.That(md, Does.Contain("| train | `dddddddddddddddd` | built | 412.5 |"));
            Assert.That(md, Does.Contain("| download | `bbbbbbbbbbbbbbbb` | cache hit | 2.25 |"));
            Assert.That(md, Does.Contain("| `train.learning_rate` | `0.0001` | `5e-05` |"));
            Assert.That(md, Does.Contain("| figure | median | mean | min | max | steps |"));
            Assert.That(md, Does.Contain("| step time (s) | 0.51 |"));
            Assert.That(md, Does.Contain("| peak memory (the process's resident set, loading included) | 640.0 MiB |"), "what the figure is on the CPU");
            Assert.That(md, Does.Not.Contain("| peak memory (MiB) |"), "no median of a running maximum");
            Assert.That(md, Does.Contain("| caption-shuffle gap (larger: the model uses the text) | 0.05 |"));
            Assert.That(md, Does.Contain("| base | 6 | 0% (0/6) |"));
            Assert.That(md, Does.Contain("| fine-tuned | 6 | 83.3% (5/6) |"));
            Assert.That(md, Does.Contain("| precision | checkpointing | step time (s) | peak memory (GiB) |\n| --- | --- | ---: | ---: |"), "figures right-aligned");
            Assert.That(md, Does.Contain("| fp32 | on | 14.2 | 13.8 |"));
            Assert.That(md, Does.Contain("## Warnings (3)"));
            Assert.That(md, Does.Contain("download: 3 items skipped"));
            Assert.That(md, Does.Contain("1 of 40 training steps were skipped by the fp16 loss scaler"));
            Assert.That(md, Does.Not.Contain("<img"));
            Assert.That(md, Does.Not.Contain("data:"));
        });
    }

    [Test]
    public void Markdown_Should_KeepTablesIntact_When_TextHasPipesAndTags()
    {
        var input = new ReportInput(ReportTestData.Overview) { Warnings = ["a | b <img src=x>\nsecond line"] };

        string md = MarkdownReportWriter.Render(ReportFacts.From(input));

        Assert.That(md, Does.Contain("- :warning: a \\| b &lt;img src=x&gt; second line"));
        Assert.That(md, Does.Not.Contain("<img"));
    }

    [Test]
    public void Html_Should_BeSelfContained()
    {
        string html = HtmlReportWriter.Render(FullFacts.Value);

        var sources = Regex.Matches(html, "src=\"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(html, Does.Not.Contain("http://").And.Not.Contain("https://"));
            Assert.That(html, Does.Not.Contain("<script").And.Not.Contain("<link").And.Not.Contain("url("));
            Assert.That(sources, Has.Count.EqualTo(ReportPlots.AllIds.Count + 3 * 2), "5 plots and a base and a fine-tuned grid per prompt");
            Assert.That(sources, Is.All.StartsWith("data:image/png;base64,"));
        });
    }

    [Test]
    public void Html_Should_ShowEverySection_With_LabelsAsText()
    {
        var facts = FullFacts.Value;

        string html = HtmlReportWriter.Render(facts);

        Assert.Multiple(() =>
        {
            foreach (string id in ReportPlots.AllIds)
                Assert.That(html, Does.Contain($"<figure class=\"plot\" id=\"{id}\">"));
            foreach (string section in new[] { "stages", "config", "training", "samples", "adherence", "benchmark", "warnings" })
                Assert.That(html, Does.Contain($"<section id=\"{section}\">"));
            foreach (var set in facts.Input.Samples)
                Assert.That(html, Does.Contain($"<figcaption>“{set.Prompt}”</figcaption>"));
            Assert.That(Regex.Matches(html, "<tr><th>base</th>").Count, Is.EqualTo(3));
            Assert.That(Regex.Matches(html, "<tr><th>fine-tuned</th>").Count, Is.EqualTo(3));
            Assert.That(html, Does.Contain("<td><code>train.learning_rate</code></td><td><code>0.0001</code></td><td><code>5e-05</code></td>"));
            Assert.That(html, Does.Contain("<th class=\"num\">build time (s)</th>"));
        });
    }

    [Test]
    public void BlackSample_Should_BeFlagged_And_AppearInEveryOutputsWarnings()
    {
        // Given the full input, whose second prompt's fine-tuned seed-2 sample is all black
        var facts = FullFacts.Value;
        string prompt = facts.Input.Samples[1].Prompt;

        // When
        string html = HtmlReportWriter.Render(facts);
        string md = MarkdownReportWriter.Render(facts);
        var json = SummaryJsonWriter.Build(facts);

        // Then
        Assert.That(facts.FlaggedImages, Is.EqualTo(new[] { new FlaggedImage(ModelVariant.FineTuned, prompt, 2, "all black (no channel value above 0)") }));
        string warning = $"fine-tuned sample for \"{prompt}\" (seed 2) is flagged: all black";
        Assert.That(md, Does.Contain(warning));
        Assert.That(html, Does.Contain(System.Net.WebUtility.HtmlEncode(warning)));
        Assert.That(html, Does.Contain("fine-tuned, seed 2: all black"));
        Assert.That(json["warnings"]!.Values<string>(), Has.Some.Contains(warning));
        Assert.That((int)json["samples"]!["flagged_images"]!, Is.EqualTo(1));
    }

    [Test]
    public void Summary_Should_HoldTheKeyFigures()
    {
        // Read as a reader would, without turning ISO strings into dates.
        var json = JsonConvert.DeserializeObject<JObject>(SummaryJsonWriter.Render(FullFacts.Value), new JsonSerializerSettings { DateParseHandling = DateParseHandling.None })!;

        Assert.Multiple(() =>
        {
            Assert.That((int)json["schema_version"]!, Is.EqualTo(1));
            Assert.That((string?)json["run"]!["git_commit"], Is.EqualTo("0123456789abcdef0123456789abcdef01234567"));
            Assert.That((string?)json["run"]!["timestamp"], Is.EqualTo("2026-11-30T12:00:00Z"));
            Assert.That(json["stages"]!.Select(s => (bool)s["cache_hit"]!), Is.EqualTo(new[] { true, true, false, false, false }));
            var training = json["training"]!;
            Assert.That((int)training["steps"]!, Is.EqualTo(40));
            Assert.That((double)training["final_loss"]!, Is.EqualTo(0.2 + 0.8 * Math.Exp(-4) + 0.02 * Math.Sin(40)).Within(1e-12));
            Assert.That((double)training["heldout_loss"]!, Is.EqualTo(0.25).Within(1e-12));
            Assert.That((double)training["heldout_loss_shuffled"]!, Is.EqualTo(0.3).Within(1e-12));
            Assert.That((double)training["caption_shuffle_gap"]!, Is.EqualTo(0.05).Within(1e-12));
            Assert.That((int)training["skipped_steps"]!, Is.EqualTo(1));
            Assert.That((long)training["peak_memory_bytes"]!, Is.EqualTo(640L * 1024 * 1024));
            Assert.That((double)training["step_time_seconds_median"]!, Is.EqualTo(0.51).Within(1e-12));
            // The median is 0.51 with the warm-up step too: the step count and the slowest step show it is left out.
            var stepTime = FullFacts.Value.StepTimes.Single(r => r.Figure == "step time (s)");
            Assert.That(stepTime.Steps, Is.EqualTo(39), "the 3 s warm-up step is left out");
            Assert.That(stepTime.Max, Is.EqualTo(0.52).Within(1e-12), "the 3 s warm-up step is left out");
            Assert.That((double)json["adherence"]!["fine_tuned"]!["color_rate"]!, Is.EqualTo(5 / 6.0).Within(1e-12));
            Assert.That((double)json["adherence"]!["base"]!["color_rate"]!, Is.Zero);
            Assert.That(json["config_differences"]![0]!["value"]!.Type, Is.EqualTo(JTokenType.Integer));
            Assert.That(json["benchmark"]!["rows"]!.Count(), Is.EqualTo(2));
        });
    }

    [Test]
    public void Writers_Should_LeaveOutWhatWasNotMeasured_When_TheInputIsMinimal()
    {
        // Given only an overview, and a log with losses but no evals, throughput or memory
        var input = new ReportInput(ReportTestData.Overview with { GitCommit = null })
        {
            Metrics = MetricsLog.Parse(["""{"kind":"train","step":1,"loss":0.5}""", """{"kind":"train","step":2,"loss":0.4}"""], "m"),
        };
        var facts = ReportFacts.From(input);

        // When
        string html = HtmlReportWriter.Render(facts);
        string md = MarkdownReportWriter.Render(facts);
        var json = SummaryJsonWriter.Build(facts);

        // Then only the loss plot is drawn, and the absent parts say so or are null
        Assert.That(ReportPlots.Render(input.Metrics).Select(p => p.Id), Is.EqualTo(new[] { ReportPlots.LossId }));
        Assert.That(html, Does.Contain($"id=\"{ReportPlots.LossId}\"").And.Not.Contain($"id=\"{ReportPlots.HeldoutId}\""));
        Assert.That(html, Does.Not.Contain("<section id=\"benchmark\">").And.Not.Contain("<section id=\"adherence\">"));
        Assert.That(html, Does.Contain("No samples were generated."));
        Assert.That(md, Does.Contain("unknown (not a git checkout)").And.Not.Contain("## Benchmark"));
        Assert.That(json["training"]!["heldout_loss"]!.Type, Is.EqualTo(JTokenType.Null));
        Assert.That(json["adherence"]!.Type, Is.EqualTo(JTokenType.Null));
        Assert.That(json["run"]!["git_commit"]!.Type, Is.EqualTo(JTokenType.Null));
    }

    [Test]
    public void Plots_Should_RenderNothing_When_TheLogIsEmpty()
    {
        Assert.That(ReportPlots.Render(MetricsLog.Empty), Is.Empty);
        Assert.That(HtmlReportWriter.Render(ReportFacts.From(new ReportInput(ReportTestData.Overview))), Does.Contain("No training metrics were logged."));
    }

    [Test]
    public void Plots_Should_BePngsOfTheDocumentedSize()
    {
        var plots = ReportPlots.Render(FullFacts.Value.Input.Metrics);

        Assert.That(plots.Select(p => p.Id), Is.EqualTo(ReportPlots.AllIds));
        foreach (var plot in plots)
        {
            var image = SdPipeline.Images.ImageCodec.DecodeRgb(plot.Png);
            Assert.That((image.Width, image.Height), Is.EqualTo((ReportPlots.Width, ReportPlots.Height)), plot.Id);
            Assert.That(ImageFlags.Check(image), Is.Null, $"{plot.Id} is blank");
        }
    }

    [Test]
    public void ConfigDifferenceFrom_Should_ListTheKeysSetAwayFromTheirDefaults()
    {
        var config = ConfigLoader.Load(null, ["download.count=128"]);

        Assert.That(ConfigDifference.From(config), Is.EqualTo(new[] { new ConfigDifference("download.count", "0", "128") }));
    }

    [Test]
    public void Write_Should_Refuse_When_ABenchmarkRowHasTheWrongLength()
    {
        var input = new ReportInput(ReportTestData.Overview) { Benchmark = new SweepTable(["a", "b"], [["1"]], []) };

        var error = Assert.Throws<ArgumentException>(() => ReportFacts.From(input));
        Assert.That(error!.Message, Does.Contain("benchmark row 1 has 1 cells but the table has 2 columns"));
    }
}
