using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Data;

/// <summary>A file to fetch over HTTP(S), with its expected SHA-256 when known.</summary>
/// <param name="Url">The address.</param>
/// <param name="Sha256">Expected SHA-256 (lowercase hex), or null to skip the check.</param>
public sealed record DatasetFile(
    [property: JsonProperty("url")] string Url,
    [property: JsonProperty("sha256")] string? Sha256 = null);

/// <summary>One dataset of <c>datasets.json</c>. The README documents every field.</summary>
public sealed record DatasetEntry
{
    /// <summary>The registry key (filled in by the registry).</summary>
    [JsonIgnore]
    public string Name { get; init; } = "";

    /// <summary>What the dataset is.</summary>
    [JsonProperty("description")]
    public string Description { get; init; } = "";

    /// <summary>
    /// Where it comes from: <c>synthetic:shapes</c>, <c>hf:org/name</c>, <c>https://…</c> (one file),
    /// <c>http</c> (the files in <see cref="Urls"/>), or a local folder or archive path.
    /// </summary>
    [JsonProperty("source")]
    public string Source { get; init; } = "";

    /// <summary>For <c>hf:</c> sources: the commit, branch or tag to fetch.</summary>
    [JsonProperty("revision")]
    public string? Revision { get; init; }

    /// <summary>For <c>hf:</c> sources: glob patterns of the repository files to fetch.</summary>
    [JsonProperty("include")]
    public IReadOnlyList<string> Include { get; init; } = [];

    /// <summary>For a single <c>https://</c> source: its expected SHA-256.</summary>
    [JsonProperty("sha256")]
    public string? Sha256 { get; init; }

    /// <summary>For <c>http</c> sources: the files to fetch.</summary>
    [JsonProperty("urls")]
    public IReadOnlyList<DatasetFile> Urls { get; init; } = [];

    /// <summary><c>auto</c> (parquet files if any, else an image folder with metadata.jsonl), <c>imagefolder</c> or <c>parquet</c>.</summary>
    [JsonProperty("format")]
    public string Format { get; init; } = "auto";

    /// <summary>Parquet column holding the image (a struct with <c>bytes</c>, as Hugging Face writes it, or a binary column).</summary>
    [JsonProperty("image_column")]
    public string ImageColumn { get; init; } = "image";

    /// <summary>Parquet column, or metadata.jsonl field, holding the caption.</summary>
    [JsonProperty("caption_column")]
    public string CaptionColumn { get; init; } = "text";

    /// <summary>Options of a synthetic generator.</summary>
    [JsonProperty("options")]
    public JObject Options { get; init; } = new();

    /// <summary>Licence of the data, for the report.</summary>
    [JsonProperty("license")]
    public string? License { get; init; }

    /// <summary>Where a person can read about it.</summary>
    [JsonProperty("homepage")]
    public string? Homepage { get; init; }
}
