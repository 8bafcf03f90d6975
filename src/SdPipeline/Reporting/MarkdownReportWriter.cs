using System.Text;

namespace SdPipeline.Reporting;

/// <summary>
/// Writes report.md for the GitHub step summary (<c>$GITHUB_STEP_SUMMARY</c>): tables and text only, no
/// images (the summary has a size limit and shows no data URIs). It points to report.html for the plots
/// and sample grids.
/// </summary>
public static class MarkdownReportWriter
{
    /// <summary>Renders the markdown report of <paramref name="facts"/>.</summary>
    public static string Render(ReportFacts facts)
    {
        ArgumentNullException.ThrowIfNull(facts);
        var md = new StringBuilder();
        var input = facts.Input;
        var o = input.Overview;

        md.AppendLine("# SdPipeline report");
        md.AppendLine();
        md.AppendLine($"Fine-tuning **{Text(o.ModelSource)}** on **{Text(o.DatasetName)}**, on {Text(o.Device)}. " +
                      "Plots and sample grids are in `report.html` (in the run's artifacts); key figures in `summary.json`.");
        md.AppendLine();
        Table(md, ["run", "value"],
        [
            ["model", Code(o.ModelSource)],
            ["dataset", Code(o.DatasetName)],
            ["device", Code(o.Device)],
            ["sdpipe", Code(o.ToolVersion)],
            ["TorchSharp", Code(o.TorchSharpVersion)],
            ["libtorch", Code(o.LibTorchVersion)],
            .. o.Numerics is null ? Array.Empty<IReadOnlyList<string>>() : [["numerics", Text(o.Numerics)]],
            ["git commit", o.GitCommit is null ? "unknown (not a git checkout)" : Code(o.GitCommit)],
            ["report made", ReportFormat.Timestamp(o.Timestamp)],
        ]);

        md.AppendLine("## Stages");
        md.AppendLine();
        if (input.Stages.Count == 0)
            Line(md, "No stage information was given.");
        else
            Table(md, ["stage", "fingerprint", "this run", "build time (s)"],
                input.Stages.Select(s => (IReadOnlyList<string>)[Text(s.Name), Code(ReportFormat.ShortFingerprint(s.Fingerprint)), s.CacheHit ? "cache hit" : "built", ReportFormat.Seconds(s.DurationSeconds)]),
                rightAligned: [3]);

        md.AppendLine("## Configuration");
        md.AppendLine();
        if (input.ConfigDifferences.Count == 0)
        {
            Line(md, "Every key has its default value.");
        }
        else
        {
            Line(md, "Keys that differ from their defaults (`sdpipe config --defaults` lists every key):");
            Table(md, ["key", "default", "this run"],
                input.ConfigDifferences.Select(d => (IReadOnlyList<string>)[Code(d.Path), Code(d.DefaultJson), Code(d.ValueJson)]));
        }

        md.AppendLine("## Training");
        md.AppendLine();
        if (facts.Steps == 0 && facts.LastEval is null)
        {
            Line(md, "No training metrics were logged.");
        }
        else
        {
            var rows = HtmlReportWriter.MethodRows(input.Method).Select(r => (IReadOnlyList<string>)[r.Figure, r.Value]).ToList();
            rows.AddRange(new List<IReadOnlyList<string>>
            {
                new[] { "steps logged", facts.Steps.ToString() },
                new[] { "final loss (last step / smoothed)", $"{ReportFormat.Number(facts.FinalLoss)} / {ReportFormat.Number(facts.FinalLossSmoothed)}" },
            });
            if (facts.LastEval is { } eval)
            {
                rows.Add([$"held-out loss (step {eval.Step})", ReportFormat.Number(eval.HeldoutLoss)]);
                rows.Add(["held-out loss, captions shuffled", ReportFormat.Number(eval.HeldoutLossShuffled)]);
                rows.Add(["caption-shuffle gap (larger: the model uses the text)", ReportFormat.Number(eval.CaptionShuffleGap)]);
            }
            rows.Add(["steps skipped by the fp16 scaler", facts.SkippedSteps.ToString()]);
            rows.Add([facts.PeakMemoryLabel, ReportFormat.Bytes(facts.PeakMemoryBytes)]);
            Table(md, ["figure", "value"], rows, rightAligned: [1]);

            if (facts.StepTimes.Count > 0)
            {
                md.AppendLine("### Step time, throughput and memory");
                md.AppendLine();
                Table(md, ["figure", "median", "mean", "min", "max", "steps"],
                    facts.StepTimes.Select(r => (IReadOnlyList<string>)[r.Figure, ReportFormat.Number(r.Median), ReportFormat.Number(r.Mean), ReportFormat.Number(r.Min), ReportFormat.Number(r.Max), r.Steps.ToString()]),
                    rightAligned: [1, 2, 3, 4, 5]);
                if (facts.WarmupExcluded)
                    Line(md, "Statistics leave out the first step (warm-up).");
            }
        }

        if (input.Validation is { } validation)
        {
            md.AppendLine("## Validation");
            md.AppendLine();
            var shownRows = validation.ShownRows();
            Line(md, $"`train.validation_prompts` sampled from the weights being trained at seed {validation.Seed}, {validation.Rows.Count} passes " +
                     $"(step {validation.Rows[0].Step} to {validation.Rows[^1].Step}; step 0 is the base model). The step × prompt grid is in `report.html` and " +
                     "`deliverables/validation/grid.png`, every image in `deliverables/validation/`" +
                     (shownRows.Count < validation.Rows.Count ? $"; {shownRows.Count} passes are listed here, evenly spaced." : "."));
            Table(md, ["step", .. validation.Prompts.Select(Text)],
                shownRows.Select(r => (IReadOnlyList<string>)[r.Step.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    .. Enumerable.Range(0, validation.Prompts.Count).Select(i => i < r.Images.Count && r.Images[i] is { } image
                        ? image.Flags.Count == 0 ? $"`{ValidationCell(r.Step, i)}`" : $":warning: {Text(string.Join(", ", image.Flags))}"
                        : "missing")]),
                rightAligned: [0]);
        }

        md.AppendLine("## Samples");
        md.AppendLine();
        if (input.Samples.Count == 0)
        {
            Line(md, "No samples were generated.");
        }
        else
        {
            string tuned = input.Method?.TunedLabel ?? "fine-tuned";
            Line(md, $"The base-vs-{tuned} image grids are in `report.html`.");
            Table(md, ["prompt", "seeds", "base flagged", $"{tuned} flagged"],
                input.Samples.Select(s => (IReadOnlyList<string>)[Text(s.Prompt), string.Join(", ", s.Seeds),
                    $"{s.Base.Count(i => i.Flags.Count > 0)} of {s.Base.Count}", $"{s.FineTuned.Count(i => i.Flags.Count > 0)} of {s.FineTuned.Count}"]),
                rightAligned: [2, 3]);
        }

        if (input.Adherence is { } adherence)
        {
            md.AppendLine("## Prompt adherence");
            md.AppendLine();
            Line(md, "Samples whose pixels show the colours their shapes caption asked for (nearest palette colour per pixel).");
            Table(md, ["model", "samples", "shape colour right", "background right", "both right"],
            [
                Rates("base", adherence.Base),
                Rates("fine-tuned", adherence.FineTuned),
            ], rightAligned: [1, 2, 3, 4]);
        }

        if (input.Benchmark is { } benchmark)
        {
            md.AppendLine("## Benchmark");
            md.AppendLine();
            Table(md, benchmark.Columns.Select(Text).ToList(), benchmark.Rows.Select(r => (IReadOnlyList<string>)r.Select(Text).ToList()),
                rightAligned: Enumerable.Range(0, benchmark.Columns.Count).Where(c => benchmark.Rows.Count > 0 && benchmark.Rows.All(r => IsFigure(r[c]))).ToList());
            foreach (string note in benchmark.Notes)
                Line(md, Text(note));
        }

        md.AppendLine($"## Warnings ({facts.Warnings.Count})");
        md.AppendLine();
        if (facts.Warnings.Count == 0)
        {
            Line(md, "None: no flagged images, no skipped data, no skipped steps.");
        }
        else
        {
            foreach (string warning in facts.Warnings)
                md.AppendLine($"- :warning: {Text(warning)}");
            md.AppendLine();
        }
        return md.ToString();
    }

    private static string ValidationCell(long step, int prompt) => SdPipeline.Training.ValidationImages.FileName(step, prompt);

    private static IReadOnlyList<string> Rates(string label, AdherenceRates rates) =>
    [
        label, rates.Images.ToString(), ReportFormat.Rate(rates.ColorMatches, rates.Images),
        ReportFormat.Rate(rates.BackgroundMatches, rates.Images), ReportFormat.Rate(rates.BothMatch, rates.Images),
    ];

    // A figure, signed change or percentage, or the dash of one not measured: the columns to right-align.
    private static bool IsFigure(string cell) =>
        cell is "—" or "–" || System.Text.RegularExpressions.Regex.IsMatch(cell, @"^[+−-]?\d[\d.,]*%?$");

    private static void Table(StringBuilder md, IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, IReadOnlyCollection<int>? rightAligned = null)
    {
        md.AppendLine($"| {string.Join(" | ", header)} |");
        md.AppendLine($"|{string.Concat(header.Select((_, i) => rightAligned?.Contains(i) == true ? " ---: |" : " --- |"))}");
        foreach (var row in rows)
            md.AppendLine($"| {string.Join(" | ", row)} |");
        md.AppendLine();
    }

    private static void Line(StringBuilder md, string text)
    {
        md.AppendLine(text);
        md.AppendLine();
    }

    /// <summary>Plain text made safe for a table cell: no pipes, no line breaks, no HTML tags.</summary>
    private static string Text(string text) =>
        text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("|", "\\|").Replace("\r", " ").Replace("\n", " ");

    /// <summary>An inline code span; GitHub honours <c>\|</c> inside code spans in tables.</summary>
    private static string Code(string text)
    {
        string cell = text.Replace("|", "\\|").Replace("\r", " ").Replace("\n", " ");
        return cell.Contains('`') ? $"`` {cell} ``" : $"`{cell}`";
    }
}
