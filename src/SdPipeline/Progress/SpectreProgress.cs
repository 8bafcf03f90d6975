using Spectre.Console;

namespace SdPipeline.Progress;

/// <summary>Progress bars with rate and ETA on an interactive terminal (Spectre.Console).</summary>
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
                new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(context => work(new SpectreProgress(context)));
    }

    /// <inheritdoc />
    public IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items)
    {
        var task = context.AddTask(Markup.Escape(description), maxValue: total ?? 1);
        task.IsIndeterminate = total is null;
        return new Task(task);
    }

    private sealed class Task(ProgressTask task) : IProgressTask
    {
        public void Advance(double amount) => task.Increment(amount);
        public void SetValue(double value) => task.Value = value;
        public void SetTotal(double total) { task.MaxValue = total; task.IsIndeterminate = false; }
        public void Dispose() { if (task.IsIndeterminate) task.MaxValue = Math.Max(task.Value, 1); task.Value = task.MaxValue; task.StopTask(); }
    }
}
