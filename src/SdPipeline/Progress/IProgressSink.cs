namespace SdPipeline.Progress;

/// <summary>What a progress counter counts: items (images, shards) or bytes (downloads).</summary>
public enum ProgressUnit
{
    /// <summary>Countable things: images, shards, steps.</summary>
    Items,

    /// <summary>Bytes, shown as KB/MB/GB with a transfer rate.</summary>
    Bytes,
}

/// <summary>Creates progress counters; a terminal gets bars, a log gets periodic plain lines.</summary>
public interface IProgressSink
{
    /// <summary>Starts a counter; <paramref name="total"/> may be unknown (null) until <see cref="IProgressTask.SetTotal"/>.</summary>
    IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items);
}

/// <summary>One running counter; disposing it marks it done.</summary>
public interface IProgressTask : IDisposable
{
    /// <summary>Adds <paramref name="amount"/> to the count.</summary>
    void Advance(double amount);

    /// <summary>Sets the count (after a resume, for example).</summary>
    void SetValue(double value);

    /// <summary>Sets or changes the total.</summary>
    void SetTotal(double total);

    /// <summary>Shows <paramref name="status"/> after the description (a training step's loss and learning rate); a sink without room for it ignores it.</summary>
    void SetStatus(string status) { }
}
