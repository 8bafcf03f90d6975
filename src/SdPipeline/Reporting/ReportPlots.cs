using ScottPlot;

namespace SdPipeline.Reporting;

/// <summary>
/// The training plots, drawn with ScottPlot: loss (raw and smoothed), held-out loss with the
/// caption-shuffle gap, learning rate, throughput and peak memory. A plot whose data the log lacks is
/// left out rather than drawn empty.
/// </summary>
public static class ReportPlots
{
    /// <summary>Id of the training loss plot.</summary>
    public const string LossId = "plot-loss";

    /// <summary>Id of the held-out loss and caption-shuffle gap plot.</summary>
    public const string HeldoutId = "plot-heldout";

    /// <summary>Id of the learning-rate plot.</summary>
    public const string LearningRateId = "plot-lr";

    /// <summary>Id of the throughput plot.</summary>
    public const string ThroughputId = "plot-throughput";

    /// <summary>Id of the peak-memory plot.</summary>
    public const string MemoryId = "plot-memory";

    /// <summary>Width of a rendered plot in pixels.</summary>
    public const int Width = 560;

    /// <summary>Height of a rendered plot in pixels.</summary>
    public const int Height = 320;

    private static readonly Color Raw = Color.FromHex("#9ecae1");
    private static readonly Color Main = Color.FromHex("#08519c");
    private static readonly Color Second = Color.FromHex("#d94801");
    private static readonly Color Third = Color.FromHex("#238b45");

    /// <summary>The ids of every plot <see cref="Render"/> can produce, in report order.</summary>
    public static IReadOnlyList<string> AllIds { get; } = [LossId, HeldoutId, LearningRateId, ThroughputId, MemoryId];

    /// <summary>Renders every plot the log has data for.</summary>
    public static IReadOnlyList<ReportPlot> Render(MetricsLog metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var plots = new List<ReportPlot?>
        {
            Loss(metrics.Train),
            Heldout(metrics.Eval),
            Series(metrics.Train, m => m.LearningRate, LearningRateId, "Learning rate", "learning rate", "Learning rate at every optimizer step.", smooth: false),
            Series(metrics.Train, m => m.ImagesPerSecond, ThroughputId, "Throughput", "images/s", "Training images per second at every step, raw and smoothed.", smooth: true),
            Series(metrics.Train, m => m.PeakMemoryBytes / (1024.0 * 1024.0), MemoryId, "Peak memory", "peak memory (MiB)", "Peak memory so far at every step, in MiB.", smooth: false),
        };
        return plots.OfType<ReportPlot>().ToList();
    }

    private static ReportPlot? Loss(IReadOnlyList<TrainMetric> train)
    {
        var points = train.Where(m => m.Loss is { } l && double.IsFinite(l)).ToList();
        if (points.Count == 0) return null;
        double[] steps = points.Select(m => (double)m.Step).ToArray();
        double[] loss = points.Select(m => m.Loss!.Value).ToArray();
        var plot = NewPlot("loss");
        Line(plot, steps, loss, Raw, "raw", 1);
        Line(plot, steps, Smoothing.Ema(loss, Smoothing.BetaFor(loss.Length)), Main, "smoothed (EMA)", 2);
        plot.ShowLegend(Edge.Bottom);
        return Finish(plot, LossId, "Training loss", "Training loss at every optimizer step (light) and its exponential moving average (dark).");
    }

    private static ReportPlot? Heldout(IReadOnlyList<EvalMetric> eval)
    {
        var points = eval.Where(m => double.IsFinite(m.HeldoutLoss)).ToList();
        if (points.Count == 0) return null;
        double[] steps = points.Select(m => (double)m.Step).ToArray();
        var plot = NewPlot("loss");
        Line(plot, steps, points.Select(m => m.HeldoutLoss).ToArray(), Main, "held-out", 2);
        var shuffled = points.Where(m => m.HeldoutLossShuffled is { } s && double.IsFinite(s)).ToList();
        if (shuffled.Count > 0)
        {
            double[] shuffledSteps = shuffled.Select(m => (double)m.Step).ToArray();
            Line(plot, shuffledSteps, shuffled.Select(m => m.HeldoutLossShuffled!.Value).ToArray(), Second, "captions shuffled", 2);
            // The gap is an order of magnitude smaller than the losses: on the left axis it would be a flat line.
            var gap = Line(plot, shuffledSteps, shuffled.Select(m => m.CaptionShuffleGap!.Value).ToArray(), Third, "gap (shuffled − held-out, right axis)", 2);
            gap.LinePattern = LinePattern.Dashed;
            gap.Axes.YAxis = plot.Axes.Right;
            plot.Axes.Right.Label.Text = "gap";
            // Zero stays in view: the gap's sign is the point (above zero the model uses the text), and a
            // nearly constant gap would otherwise be blown up into noise.
            double low = Math.Min(0, shuffled.Min(m => m.CaptionShuffleGap!.Value));
            double high = Math.Max(0, shuffled.Max(m => m.CaptionShuffleGap!.Value));
            double margin = Math.Max(1e-6, (high - low) * 0.1);
            plot.Axes.SetLimitsY(low - margin, high + margin, plot.Axes.Right);
        }
        plot.ShowLegend(Edge.Bottom);
        return Finish(plot, HeldoutId, "Held-out loss and caption-shuffle gap",
            "Loss on the held-out split with the true captions and with captions shuffled among the images, and their gap (right axis): a larger gap means the model uses the text.");
    }

    private static ReportPlot? Series(IReadOnlyList<TrainMetric> train, Func<TrainMetric, double?> value, string id, string title, string yLabel, string alt, bool smooth)
    {
        var points = train.Select(m => (Step: (double)m.Step, Value: value(m)))
            .Where(p => p.Value is { } v && double.IsFinite(v))
            .Select(p => (p.Step, Value: p.Value!.Value))
            .ToList();
        if (points.Count == 0) return null;
        double[] steps = points.Select(p => p.Step).ToArray();
        double[] values = points.Select(p => p.Value).ToArray();
        var plot = NewPlot(yLabel);
        if (smooth)
        {
            Line(plot, steps, values, Raw, "raw", 1);
            Line(plot, steps, Smoothing.Ema(values, Smoothing.BetaFor(values.Length)), Main, "smoothed (EMA)", 2);
            plot.ShowLegend(Edge.Bottom);
        }
        else
        {
            Line(plot, steps, values, Main, null, 2);
        }
        return Finish(plot, id, title, alt);
    }

    /// <summary>A plot without a title: the report writes the title as HTML text above it.</summary>
    private static Plot NewPlot(string yLabel)
    {
        var plot = new Plot();
        plot.Font.Set(Fonts.Sans);
        plot.XLabel("step");
        plot.YLabel(yLabel);
        return plot;
    }

    private static ScottPlot.Plottables.Scatter Line(Plot plot, double[] xs, double[] ys, Color color, string? legend, float width)
    {
        var line = plot.Add.ScatterLine(xs, ys, color);
        line.LineWidth = width;
        // A lone point has no line to draw: give it a marker so a one-step run still shows its value.
        line.MarkerSize = xs.Length == 1 ? 7 : 0;
        if (legend is not null) line.LegendText = legend;
        return line;
    }

    private static ReportPlot Finish(Plot plot, string id, string title, string alt) =>
        new(id, title, alt, plot.GetImageBytes(Width, Height, ImageFormat.Png));
}
