using System.Collections.Concurrent;

namespace SdPipeline.Latents;

/// <summary>
/// Reads the next batches on a background thread while the training step runs, so the loop never waits on
/// disk. The thread only copies bytes out of the memory-mapped shards; tensors are made on the consuming
/// thread (TorchSharp's dispose scopes are per thread).
/// </summary>
public sealed class BatchPrefetcher : IDisposable
{
    private readonly BlockingCollection<LatentDataset.RawBatch> _queue;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;

    /// <summary>Starts reading <paramref name="batches"/> ahead, keeping at most <paramref name="depth"/> ready.</summary>
    public BatchPrefetcher(LatentDataset dataset, IEnumerable<IReadOnlyList<LatentRow>> batches, int depth = 2)
    {
        _queue = new BlockingCollection<LatentDataset.RawBatch>(Math.Max(1, depth));
        _reader = Task.Run(() =>
        {
            try
            {
                foreach (var rows in batches)
                {
                    if (_stop.IsCancellationRequested) break;
                    _queue.Add(dataset.ReadRaw(rows), _stop.Token);
                }
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
            finally
            {
                _queue.CompleteAdding();
            }
        });
    }

    /// <summary>The batches in order, as tensors; rethrows a reader failure.</summary>
    public IEnumerable<LatentBatch> Batches()
    {
        foreach (var raw in _queue.GetConsumingEnumerable())
            yield return raw.ToTensors();
        _reader.GetAwaiter().GetResult(); // surface an exception from the reader thread
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stop.Cancel();
        try { _reader.Wait(TimeSpan.FromSeconds(10)); }
        catch (AggregateException) { }
        _queue.Dispose();
        _stop.Dispose();
    }
}
