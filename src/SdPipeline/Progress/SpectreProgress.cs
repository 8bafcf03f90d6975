using Spectre.Console;

namespace SdPipeline.Progress;

/// <summary>
/// Progress bars with rate and ETA on an interactive terminal (Spectre.Console). Counts and rates follow each
/// counter's unit: bytes as KB/MB/GB and MB/s (Spectre's download columns), steps and images as plain counts per second.
/// </summary>
public sealed class SpectreProgress(ProgressContext context) : IProgressSink
{
    /// <summary>
    /// Runs <paramref name="work"/> with bars when the console is an interactive terminal, and with plain
    /// periodic lines otherwise (CI logs, pipes).
    /// </summary>
    public static T Run<T>(Func<IProgressSink, T> work)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
            return work(new PlainProgress(Console.Out, TimeSpan.FromSeconds(10)));
        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(),
                new AmountColumn(), new RateColumn(), new RemainingTimeColumn())
            .Start(context => work(new SpectreProgress(context)));
    }

    /// <inheritdoc />
    public IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items)
    {
        var task = context.AddTask(Markup.Escape(description), maxValue: total ?? 1);
        task.IsIndeterminate = total is null;
        task.State.Update<ProgressUnit>(UnitKey, _ => unit);
        return new Task(task, description);
    }

    private const string UnitKey = "unit";

    private static bool IsBytes(ProgressTask task) => task.State.Get<ProgressUnit>(UnitKey) == ProgressUnit.Bytes;

    /// <summary>"12.3 MB/45.0 MB" for bytes, "120/1100" for counts.</summary>
    private sealed class AmountColumn : ProgressColumn
    {
        private readonly DownloadedColumn _bytes = new();

        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            IsBytes(task) ? _bytes.Render(options, task, deltaTime)
                : new Text(task.IsIndeterminate ? $"{task.Value:0}" : $"{task.Value:0}/{task.MaxValue:0}");
    }

    /// <summary>"3.2 MB/s" for bytes, "1.8/s" for counts.</summary>
    private sealed class RateColumn : ProgressColumn
    {
        private readonly TransferSpeedColumn _bytes = new();

        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            IsBytes(task) ? _bytes.Render(options, task, deltaTime)
                : new Text(task.Speed is double speed ? $"{speed:0.0#}/s" : "");
    }

    private sealed class Task(ProgressTask task, string description) : IProgressTask
    {
        public void SetStatus(string status) => task.Description = Markup.Escape(status.Length > 0 ? $"{description} ({status})" : description);
        public void Advance(double amount) => task.Increment(amount);
        public void SetValue(double value) => task.Value = value;
        public void SetTotal(double total) { task.MaxValue = total; task.IsIndeterminate = false; }
        public void Dispose() { if (task.IsIndeterminate) task.MaxValue = Math.Max(task.Value, 1); task.Value = task.MaxValue; task.StopTask(); }
    }
}
