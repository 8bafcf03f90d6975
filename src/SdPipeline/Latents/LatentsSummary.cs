namespace SdPipeline.Latents;

/// <summary>The latents stage's result, as its manifest's <c>summary</c> holds it (snake_case keys).</summary>
public sealed record LatentsSummary
{
    /// <summary>Rows of the cache (an item can give several: flips, buckets).</summary>
    public int Rows { get; init; }

    /// <summary>Dataset items read.</summary>
    public int Items { get; init; }

    /// <summary>Shard files.</summary>
    public int Shards { get; init; }

    /// <summary>Rows encoded by this run (the rest came from shards an interrupted run finished).</summary>
    public int Encoded { get; init; }

    /// <summary>Shards reused from an interrupted run.</summary>
    public int ReusedShards { get; init; }

    /// <summary>Rows skipped (undecodable images).</summary>
    public int Skipped { get; init; }

    /// <summary>Encoding rate, or null when nothing was encoded.</summary>
    public double? ImagesPerSecond { get; init; }

    /// <summary>The process's peak resident memory.</summary>
    public long PeakMemoryBytes { get; init; }

    /// <summary>The torch device the encoders ran on.</summary>
    public string Device { get; init; } = "";
}
