using System.Net;
using System.Text;
using SdPipeline.Benchmarks.Sweep;
using SdPipeline.Images;

namespace SdPipeline.Reporting;

/// <summary>
/// Writes report.html: one self-contained file a newcomer can open from a CI run. Images are PNG
/// <c>data:</c> URIs, styles are inline, there is no script and no URL; a Content-Security-Policy that
/// allows nothing else makes any future slip (an external image, a font) fail visibly in the browser
/// test instead of leaking a request.
/// </summary>
public static class HtmlReportWriter
{
    /// <summary>Id of the sample grid images' section; each prompt's figure is <c>prompt-N</c> (1-based).</summary>
    public const string SamplesId = "samples";

    /// <summary>Id of the validation images' section (step × prompt).</summary>
    public const string ValidationId = "validation";

    /// <summary>Padding between sample cells in a grid, in pixels.</summary>
    public const int GridPadding = 4;

    /// <summary>Thumbnails smaller than this are shown enlarged (pixelated) to about this height in CSS pixels.</summary>
    private const int MinimumDisplayHeight = 160;

    /// <summary>Validation thumbnails (one per cell) are enlarged to about this height.</summary>
    private const int ValidationDisplayHeight = 96;

    private const string Style = """
        :root { --ink: #1d2330; --muted: #5b6475; --line: #d9dee7; --band: #f4f6fa; --accent: #08519c; --warn: #b45309; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); background: #fff; }
        header { background: var(--band); border-bottom: 1px solid var(--line); padding: 1.5rem 2rem 1rem; }
        header h1 { margin: 0 0 .25rem; font-size: 1.6rem; }
        .lead { margin: 0 0 1rem; color: var(--muted); }
        dl.overview { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1.2rem; margin: 0 0 1rem; }
        dl.overview dt { color: var(--muted); }
        dl.overview dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9rem; overflow-wrap: anywhere; }
        nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; }
        main { padding: 0 2rem 2rem; max-width: 1240px; }
        section { margin-top: 2rem; }
        h2 { font-size: 1.3rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; }
        h3 { font-size: 1.05rem; margin-top: 1.5rem; }
        table { border-collapse: collapse; margin: .5rem 0 1rem; }
        th, td { border: 1px solid var(--line); padding: .3rem .6rem; text-align: left; vertical-align: top; }
        thead th { background: var(--band); }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .88rem; overflow-wrap: anywhere; }
        .note, .empty { color: var(--muted); }
        .hit { color: #1a7f37; }
        .built { color: var(--accent); }
        .plots { display: flex; flex-wrap: wrap; gap: 1rem; }
        figure { margin: 0; }
        figure.plot { border: 1px solid var(--line); padding: .5rem; max-width: 100%; }
        figure.plot figcaption { font-weight: 600; margin-bottom: .25rem; }
        figure.plot img { display: block; max-width: 100%; height: auto; }
        figure.prompt { margin: 1rem 0 1.5rem; }
        figure.prompt figcaption { font-weight: 600; font-size: 1.05rem; }
        table.grid th { width: 7rem; vertical-align: middle; background: var(--band); }
        table.grid td { padding: 0; }
        table.validation td { padding: 2px; }
        table.validation thead th { font-weight: 400; font-size: .85rem; max-width: 12rem; }
        table.grid img { display: block; max-width: 100%; height: auto; image-rendering: pixelated; }
        ul.flags, ul.warnings { color: var(--warn); }
        .alert { display: inline-block; margin: 0 0 1rem; padding: .3rem .8rem; border: 1px solid #f0c98a; background: #fff7e8; color: var(--warn); border-radius: 4px; }
        .alert a { color: var(--warn); }
        details summary { cursor: pointer; color: var(--accent); }
        footer { border-top: 1px solid var(--line); color: var(--muted); padding: 1rem 2rem; font-size: .85rem; }
        """;

    /// <summary>Renders the report page of <paramref name="facts"/>.</summary>
    public static string Render(ReportFacts facts)
    {
        ArgumentNullException.ThrowIfNull(facts);
        var html = new StringBuilder();
        var input = facts.Input;
        var o = input.Overview;
        html.AppendLine("<!DOCTYPE html>");
        html.AppendLine("<html lang=\"en\">");
        html.AppendLine("<head>");
        html.AppendLine("<meta charset=\"utf-8\">");
        html.AppendLine("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">");
        html.AppendLine("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        html.AppendLine($"<title>SdPipeline report: {E(o.DatasetName)} on {E(o.ModelSource)}</title>");
        html.AppendLine($"<style>\n{Style}\n</style>");
        html.AppendLine("</head>");
        html.AppendLine("<body>");

        Header(html, facts);
        html.AppendLine("<main>");
        Stages(html, input.Stages);
        Config(html, input.ConfigDifferences);
        Training(html, facts);
        if (input.Validation is { } validation) Validation(html, validation);
        Samples(html, input.Samples, input.Method?.TunedLabel ?? ReportFacts.Label(ModelVariant.FineTuned));
        if (input.Adherence is { } adherence) Adherence(html, adherence);
        if (input.Benchmark is { } benchmark) Benchmark(html, benchmark);
        Warnings(html, facts.Warnings);
        html.AppendLine("</main>");
        html.AppendLine($"<footer>Written by sdpipe {E(o.ToolVersion)} on {E(ReportFormat.Timestamp(o.Timestamp))}. " +
                        "This file is self-contained: every image is embedded and nothing is fetched. " +
                        "report.md holds the same tables and summary.json the key figures.</footer>");
        html.AppendLine("</body>");
        html.AppendLine("</html>");
        return html.ToString();
    }

    private static void Header(StringBuilder html, ReportFacts facts)
    {
        var input = facts.Input;
        var o = input.Overview;
        html.AppendLine("<header>");
        html.AppendLine("<h1>SdPipeline report</h1>");
        html.AppendLine($"<p class=\"lead\">Fine-tuning <strong>{E(o.ModelSource)}</strong> on <strong>{E(o.DatasetName)}</strong>, on {E(o.Device)}.</p>");
        html.AppendLine("<dl class=\"overview\">");
        Term(html, "model", o.ModelSource);
        Term(html, "dataset", o.DatasetName);
        Term(html, "device", o.Device);
        Term(html, "sdpipe", o.ToolVersion);
        Term(html, "TorchSharp", o.TorchSharpVersion);
        Term(html, "libtorch", o.LibTorchVersion);
        if (o.Numerics is not null) Term(html, "numerics", o.Numerics);
        Term(html, "git commit", o.GitCommit ?? "unknown (not a git checkout)");
        Term(html, "report made", ReportFormat.Timestamp(o.Timestamp));
        if (input.Stages.Count > 0)
            Term(html, "stage time", $"{ReportFormat.Seconds(input.Stages.Sum(s => s.DurationSeconds))} s in {input.Stages.Count} stages, {input.Stages.Count(s => s.CacheHit)} cached");
        html.AppendLine("</dl>");
        if (facts.Warnings.Count > 0)
            html.AppendLine($"<p class=\"alert\">{facts.Warnings.Count} warning{(facts.Warnings.Count == 1 ? "" : "s")}: see <a href=\"#warnings\">Warnings</a>.</p>");
        html.Append("<nav><a href=\"#stages\">Stages</a><a href=\"#config\">Configuration</a><a href=\"#training\">Training</a>");
        if (input.Validation is not null) html.Append($"<a href=\"#{ValidationId}\">Validation</a>");
        html.Append($"<a href=\"#{SamplesId}\">Samples</a>");
        if (input.Adherence is not null) html.Append("<a href=\"#adherence\">Prompt adherence</a>");
        if (input.Benchmark is not null) html.Append("<a href=\"#benchmark\">Benchmark</a>");
        html.AppendLine($"<a href=\"#warnings\">Warnings ({facts.Warnings.Count})</a></nav>");
        html.AppendLine("</header>");
    }

    private static void Stages(StringBuilder html, IReadOnlyList<StageRun> stages)
    {
        html.AppendLine("<section id=\"stages\">");
        html.AppendLine("<h2>Stages</h2>");
        if (stages.Count == 0)
        {
            html.AppendLine("<p class=\"empty\">No stage information was given.</p>");
        }
        else
        {
            html.AppendLine("<p class=\"note\">A stage is cached when an artifact with the same fingerprint (a hash of the config keys it reads and its inputs) was already in the store. Build time is the artifact's own build, also for a cached one.</p>");
            html.AppendLine("<table><thead><tr><th>stage</th><th>fingerprint</th><th>this run</th><th class=\"num\">build time (s)</th></tr></thead><tbody>");
            foreach (var s in stages)
                html.AppendLine($"<tr><td>{E(s.Name)}</td><td><code title=\"{E(s.Fingerprint)}\">{E(ReportFormat.ShortFingerprint(s.Fingerprint))}</code></td>" +
                                $"<td class=\"{(s.CacheHit ? "hit" : "built")}\">{(s.CacheHit ? "cache hit" : "built")}</td><td class=\"num\">{ReportFormat.Seconds(s.DurationSeconds)}</td></tr>");
            html.AppendLine("</tbody></table>");
        }
        html.AppendLine("</section>");
    }

    private static void Config(StringBuilder html, IReadOnlyList<ConfigDifference> differences)
    {
        html.AppendLine("<section id=\"config\">");
        html.AppendLine("<h2>Configuration</h2>");
        if (differences.Count == 0)
        {
            html.AppendLine("<p class=\"empty\">Every key has its default value (<code>sdpipe config --defaults</code> lists them).</p>");
        }
        else
        {
            html.AppendLine("<p class=\"note\">Only the keys that differ from their defaults; <code>sdpipe config --defaults</code> lists every key.</p>");
            html.AppendLine("<table><thead><tr><th>key</th><th>default</th><th>this run</th></tr></thead><tbody>");
            foreach (var d in differences)
                html.AppendLine($"<tr><td><code>{E(d.Path)}</code></td><td><code>{E(d.DefaultJson)}</code></td><td><code>{E(d.ValueJson)}</code></td></tr>");
            html.AppendLine("</tbody></table>");
        }
        html.AppendLine("</section>");
    }

    private static void Training(StringBuilder html, ReportFacts facts)
    {
        html.AppendLine("<section id=\"training\">");
        html.AppendLine("<h2>Training</h2>");
        if (facts.Steps == 0 && facts.LastEval is null)
        {
            html.AppendLine("<p class=\"empty\">No training metrics were logged.</p>");
            html.AppendLine("</section>");
            return;
        }

        html.AppendLine("<table><tbody>");
        foreach (var (figure, value) in MethodRows(facts.Input.Method)) Row(html, figure, value);
        Row(html, "steps logged", facts.Steps.ToString());
        Row(html, "final loss (last step / smoothed)", $"{ReportFormat.Number(facts.FinalLoss)} / {ReportFormat.Number(facts.FinalLossSmoothed)}");
        if (facts.LastEval is { } eval)
        {
            Row(html, $"held-out loss (step {eval.Step})", ReportFormat.Number(eval.HeldoutLoss));
            Row(html, "held-out loss, captions shuffled", ReportFormat.Number(eval.HeldoutLossShuffled));
            Row(html, "caption-shuffle gap (larger: the model uses the text)", ReportFormat.Number(eval.CaptionShuffleGap));
        }
        Row(html, "steps skipped by the fp16 scaler", facts.SkippedSteps.ToString());
        Row(html, facts.PeakMemoryLabel, ReportFormat.Bytes(facts.PeakMemoryBytes));
        html.AppendLine("</tbody></table>");

        var plots = ReportPlots.Render(facts.Input.Metrics);
        html.AppendLine("<div class=\"plots\">");
        foreach (var plot in plots)
            html.AppendLine($"<figure class=\"plot\" id=\"{plot.Id}\"><figcaption>{E(plot.Title)}</figcaption>" +
                            $"<img src=\"{DataUri(plot.Png)}\" width=\"{ReportPlots.Width}\" height=\"{ReportPlots.Height}\" alt=\"{E(plot.AltText)}\"></figure>");
        html.AppendLine("</div>");

        if (facts.StepTimes.Count > 0)
        {
            html.AppendLine("<h3>Step time, throughput and memory</h3>");
            html.AppendLine("<table><thead><tr><th>figure</th><th class=\"num\">median</th><th class=\"num\">mean</th><th class=\"num\">min</th><th class=\"num\">max</th><th class=\"num\">steps</th></tr></thead><tbody>");
            foreach (var row in facts.StepTimes)
                html.AppendLine($"<tr><td>{E(row.Figure)}</td><td class=\"num\">{ReportFormat.Number(row.Median)}</td><td class=\"num\">{ReportFormat.Number(row.Mean)}</td>" +
                                $"<td class=\"num\">{ReportFormat.Number(row.Min)}</td><td class=\"num\">{ReportFormat.Number(row.Max)}</td><td class=\"num\">{row.Steps}</td></tr>");
            html.AppendLine("</tbody></table>");
            if (facts.WarmupExcluded)
                html.AppendLine("<p class=\"note\">Statistics leave out the first step (warm-up: allocation and kernel selection).</p>");
        }
        html.AppendLine("</section>");
    }

    /// <summary>The method rows of the training table (shared with report.md): method, trainable parameters, LoRA files, benchmark.</summary>
    internal static IEnumerable<(string Figure, string Value)> MethodRows(TrainingMethod? method)
    {
        if (method is null) yield break;
        var c = System.Globalization.CultureInfo.InvariantCulture;
        yield return ("method", method.IsLora
            ? $"LoRA (rank {method.Rank}, alpha {method.Alpha?.ToString("0.##", c)}, on {string.Join(", ", method.Targets)})"
            : "full fine-tune");
        if (method.TrainableParameters is { } trainable)
            yield return ("trainable parameters", trainable.ToString("N0", c) +
                (method.BaseParameters is { } total && total > 0 ? $" ({100.0 * trainable / total:0.###}% of {total.ToString("N0", c)} frozen)" : ""));
        foreach (var (name, bytes) in method.Files)
            yield return ($"file {name}", ReportFormat.Bytes(bytes));
        if (method.SampleScale is { } scale) yield return ("LoRA strength when sampling", scale.ToString("0.###", c));
        if (method.BenchmarkComparison is { } b)
            yield return ($"benchmark: LoRA vs full fine-tune ({b.Cell} vs {Benchmarks.Sweep.BenchmarkCell.Baseline.Id})",
                $"step time {Benchmarks.Sweep.SweepResult.Percent(b.TimeChange)}, peak memory {Benchmarks.Sweep.SweepResult.Percent(b.MemoryChange)}");
    }

    private static void Samples(StringBuilder html, IReadOnlyList<SampleSet> samples, string tuned)
    {
        html.AppendLine($"<section id=\"{SamplesId}\">");
        html.AppendLine($"<h2>Samples: base vs {E(tuned)}</h2>");
        if (samples.Count == 0)
        {
            html.AppendLine("<p class=\"empty\">No samples were generated.</p>");
            html.AppendLine("</section>");
            return;
        }
        html.AppendLine($"<p class=\"note\">Each row shows the same seeds, left to right, from the base model and from the {E(tuned)} one.</p>");
        for (int n = 0; n < samples.Count; n++)
        {
            var set = samples[n];
            html.AppendLine($"<figure class=\"prompt\" id=\"prompt-{n + 1}\">");
            html.AppendLine($"<figcaption>“{E(set.Prompt)}”</figcaption>");
            html.AppendLine($"<p class=\"note\">seeds {E(string.Join(", ", set.Seeds))} (left to right)</p>");
            html.AppendLine("<table class=\"grid\"><tbody>");
            GridRow(html, set, ReportFacts.Label(ModelVariant.Base), set.Base);
            GridRow(html, set, tuned, set.FineTuned);
            html.AppendLine("</tbody></table>");
            var flags = set.Base.SelectMany(i => i.Flags.Select(f => $"base, seed {i.Seed}: {f}"))
                .Concat(set.FineTuned.SelectMany(i => i.Flags.Select(f => $"{tuned}, seed {i.Seed}: {f}")))
                .ToList();
            if (flags.Count > 0)
                html.AppendLine($"<ul class=\"flags\">{string.Concat(flags.Select(f => $"<li>{E(f)}</li>"))}</ul>");
            html.AppendLine("</figure>");
        }
        html.AppendLine("</section>");
    }

    private static void Validation(StringBuilder html, ValidationGrid grid)
    {
        html.AppendLine($"<section id=\"{ValidationId}\">");
        html.AppendLine("<h2>Validation: the prompts step by step</h2>");
        var rows = grid.ShownRows();
        string shown = rows.Count < grid.Rows.Count ? $" {rows.Count} of the {grid.Rows.Count} passes are shown, evenly spaced; every image is in the train artifact's validation/ folder." : "";
        html.AppendLine($"<p class=\"note\">train.validation_prompts sampled from the weights being trained (the EMA weights when EMA is on), each from the same noise (seed {grid.Seed}) at every step, " +
                        $"so a column changes only as the model learns. Step 0 is the base model.{E(shown)}</p>");
        html.AppendLine("<table class=\"grid validation\"><thead><tr><th>step</th>");
        foreach (string prompt in grid.Prompts) html.Append($"<th>{E(prompt)}</th>");
        html.AppendLine("</tr></thead><tbody>");
        foreach (var row in rows)
        {
            html.Append($"<tr><th>{row.Step}</th>");
            for (int i = 0; i < grid.Prompts.Count; i++)
            {
                var image = i < row.Images.Count ? row.Images[i] : null;
                var decoded = image is null ? null : TryDecode(image.Png);
                if (image is null || decoded is null)
                {
                    html.Append("<td class=\"empty\">missing</td>");
                    continue;
                }
                int scale = Math.Max(1, (int)Math.Ceiling(ValidationDisplayHeight / (double)decoded.Height));
                html.Append($"<td><img src=\"{DataUri(image.Png)}\" width=\"{decoded.Width * scale}\" height=\"{decoded.Height * scale}\" alt=\"{E($"step {row.Step}: “{grid.Prompts[i]}”")}\"></td>");
            }
            html.AppendLine("</tr>");
        }
        html.AppendLine("</tbody></table>");
        var flags = grid.Rows.SelectMany(r => r.Images.Select((image, i) => (r.Step, i, image)))
            .SelectMany(c => c.image?.Flags.Select(f => $"step {c.Step}, “{grid.Prompts[c.i]}”: {f}") ?? []).ToList();
        if (flags.Count > 0)
            html.AppendLine($"<ul class=\"flags\">{string.Concat(flags.Select(f => $"<li>{E(f)}</li>"))}</ul>");
        html.AppendLine("</section>");
    }

    private static void GridRow(StringBuilder html, SampleSet set, string label, IReadOnlyList<SampleImage> images)
    {
        if (images.Count == 0)
        {
            html.AppendLine($"<tr><th>{label}</th><td class=\"empty\">not sampled</td></tr>");
            return;
        }
        var decoded = images.Select(i => TryDecode(i.Png)).ToList();
        var first = decoded.FirstOrDefault(d => d is not null);
        int cellWidth = first?.Width ?? 64, cellHeight = first?.Height ?? 64;
        // An undecodable sample keeps its place as a grey cell (its flag says why) so the seeds stay aligned.
        var cells = decoded.Select(d => d ?? Grey(cellWidth, cellHeight)).ToList();
        var grid = ImageGrid.Compose(cells, columns: cells.Count, padding: GridPadding);
        int scale = Math.Max(1, (int)Math.Ceiling(MinimumDisplayHeight / (double)cells.Max(c => c.Height)));
        string alt = $"{label} samples for “{set.Prompt}”, seeds {string.Join(", ", images.Select(i => i.Seed))}";
        html.AppendLine($"<tr><th>{label}</th><td><img src=\"{DataUri(ImageCodec.EncodePng(grid))}\" width=\"{grid.Width * scale}\" height=\"{grid.Height * scale}\" alt=\"{E(alt)}\"></td></tr>");
    }

    private static void Adherence(StringBuilder html, AdherenceResult adherence)
    {
        html.AppendLine("<section id=\"adherence\">");
        html.AppendLine("<h2>Prompt adherence</h2>");
        html.AppendLine($"<p class=\"note\">For captions of the synthetic shapes dataset: does the sample show the asked colours? Every pixel is assigned to the nearest palette colour; the most common is the background, the most common other one (covering at least {PromptAdherence.MinimumShapeShare * 100:0.#}% of the image) the shape.</p>");
        html.AppendLine("<table><thead><tr><th>model</th><th class=\"num\">samples</th><th class=\"num\">shape colour right</th><th class=\"num\">background right</th><th class=\"num\">both right</th></tr></thead><tbody>");
        AdherenceRow(html, "base", adherence.Base);
        AdherenceRow(html, "fine-tuned", adherence.FineTuned);
        html.AppendLine("</tbody></table>");
        html.AppendLine("<details><summary>Every judged sample</summary>");
        html.AppendLine("<table><thead><tr><th>model</th><th>prompt</th><th class=\"num\">seed</th><th>shape colour seen</th><th>background seen</th></tr></thead><tbody>");
        foreach (var v in adherence.Verdicts)
            html.AppendLine($"<tr><td>{ReportFacts.Label(v.Model)}</td><td>{E(v.Prompt)}</td><td class=\"num\">{v.Seed}</td>" +
                            $"<td>{Mark(v.ColorMatches)} {E(v.Reading.ShapeColor ?? "none")}</td><td>{Mark(v.BackgroundMatches)} {E(v.Reading.Background ?? "none")}</td></tr>");
        html.AppendLine("</tbody></table></details>");
        html.AppendLine("</section>");
    }

    private static void AdherenceRow(StringBuilder html, string label, AdherenceRates rates) =>
        html.AppendLine($"<tr><td>{label}</td><td class=\"num\">{rates.Images}</td><td class=\"num\">{ReportFormat.Rate(rates.ColorMatches, rates.Images)}</td>" +
                        $"<td class=\"num\">{ReportFormat.Rate(rates.BackgroundMatches, rates.Images)}</td><td class=\"num\">{ReportFormat.Rate(rates.BothMatch, rates.Images)}</td></tr>");

    private static void Benchmark(StringBuilder html, SweepTable benchmark)
    {
        html.AppendLine("<section id=\"benchmark\">");
        html.AppendLine("<h2>Benchmark</h2>");
        html.AppendLine($"<table><thead><tr>{string.Concat(benchmark.Columns.Select(c => $"<th>{E(c)}</th>"))}</tr></thead><tbody>");
        foreach (var row in benchmark.Rows)
            html.AppendLine($"<tr>{string.Concat(row.Select(c => $"<td>{E(c)}</td>"))}</tr>");
        html.AppendLine("</tbody></table>");
        foreach (string note in benchmark.Notes)
            html.AppendLine($"<p class=\"note\">{E(note)}</p>");
        html.AppendLine("</section>");
    }

    private static void Warnings(StringBuilder html, IReadOnlyList<string> warnings)
    {
        html.AppendLine("<section id=\"warnings\">");
        html.AppendLine($"<h2>Warnings ({warnings.Count})</h2>");
        html.AppendLine(warnings.Count == 0
            ? "<p class=\"empty\">None: no flagged images, no skipped data, no skipped steps.</p>"
            : $"<ul class=\"warnings\">{string.Concat(warnings.Select(w => $"\n<li>{E(w)}</li>"))}\n</ul>");
        html.AppendLine("</section>");
    }

    private static void Term(StringBuilder html, string term, string value) =>
        html.AppendLine($"<dt>{E(term)}</dt><dd>{E(value)}</dd>");

    private static void Row(StringBuilder html, string name, string value) =>
        html.AppendLine($"<tr><th>{E(name)}</th><td class=\"num\">{E(value)}</td></tr>");

    private static string Mark(bool ok) => ok ? "✓" : "✗";

    private static RgbImage? TryDecode(byte[] encoded)
    {
        try
        {
            return ImageCodec.DecodeRgb(encoded);
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    private static RgbImage Grey(int width, int height)
    {
        var image = new RgbImage(width, height);
        Array.Fill(image.Pixels, (byte)128);
        return image;
    }

    private static string DataUri(byte[] png) => "data:image/png;base64," + Convert.ToBase64String(png);

    private static string E(string text) => WebUtility.HtmlEncode(text);
}
