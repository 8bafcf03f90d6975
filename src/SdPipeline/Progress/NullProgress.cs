namespace SdPipeline.Progress;

/// <summary>A sink that shows nothing (tests, nested calls).</summary>
public sealed class NullProgress : IProgressSink
{
    /// <summary>The shared instance.</summary>
    public static NullProgress Instance { get; } = new();

    /// <inheritdoc />
    public IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items) => new Task();

    private sealed class Task : IProgressTask
    {
        public void Advance(double amount) { }
        public void SetValue(double value) { }
        public void SetTotal(double total) { }
        public void Dispose() { }
    }
}
