using Newtonsoft.Json;

namespace SdPipeline.Data;

/// <summary>The download stage's result, as its manifest's <c>summary</c> holds it (snake_case keys).</summary>
public sealed record DownloadSummary
{
    /// <summary>The dataset's registry name.</summary>
    public required string Dataset { get; init; }

    /// <summary>The registry entry's source (<c>synthetic:shapes</c>, <c>hf:org/name</c>, a URL, a local path).</summary>
    public required string Source { get; init; }

    /// <summary>The Hub commit a Hub dataset's revision resolved to.</summary>
    [JsonProperty(NullValueHandling = NullValueHandling.Ignore)]
    public string? Revision { get; init; }

    /// <summary>Bytes fetched over the network (0 for a local folder, or when the shared download cache had every file); absent for generated datasets.</summary>
    [JsonProperty(NullValueHandling = NullValueHandling.Ignore)]
    public long? BytesDownloaded { get; init; }

    /// <summary>Items written (training and held out).</summary>
    public int Items { get; init; }

    /// <summary>Training items.</summary>
    public int Train { get; init; }

    /// <summary>Held-out items.</summary>
    public int Heldout { get; init; }

    /// <summary>Items skipped, by reason (the reasons of <c>skipped.jsonl</c>).</summary>
    public IReadOnlyDictionary<string, int> Skipped { get; init; } = new Dictionary<string, int>();
}
