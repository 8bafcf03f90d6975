using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>One file of an artifact, as recorded in its manifest.</summary>
/// <param name="Path">Path relative to the artifact folder, with '/' separators.</param>
/// <param name="Size">Size in bytes.</param>
/// <param name="Sha256">SHA-256 of the content.</param>
public sealed record ManifestFile(string Path, long Size, string Sha256);

/// <summary>
/// <c>manifest.json</c>: written last into an artifact folder; its presence and agreement with the files is
/// what makes the folder a cache hit.
/// </summary>
public sealed record Manifest
{
    /// <summary>File name of the manifest inside an artifact folder.</summary>
    public const string FileName = "manifest.json";

    /// <summary>Version of this manifest format.</summary>
    public int ManifestVersion { get; init; } = 1;

    /// <summary>Stage name.</summary>
    public required string Stage { get; init; }

    /// <summary>Full SHA-256 fingerprint.</summary>
    public required string Fingerprint { get; init; }

    /// <summary>What the fingerprint was computed from.</summary>
    public required JObject FingerprintInputs { get; init; }

    /// <summary>The whole effective config of the run that built it.</summary>
    public required JObject EffectiveConfig { get; init; }

    /// <summary>Every file of the artifact but the manifest.</summary>
    public required IReadOnlyList<ManifestFile> Files { get; init; }

    /// <summary>When the build started (UTC).</summary>
    public DateTime StartedAt { get; init; }

    /// <summary>When the build finished (UTC).</summary>
    public DateTime FinishedAt { get; init; }

    /// <summary>Wall time of the build.</summary>
    public double DurationSeconds { get; init; }

    /// <summary>Version of sdpipe that built it.</summary>
    public string ToolVersion { get; init; } = "";

    /// <summary>Stage-specific figures (counts, rates, skipped items).</summary>
    public JObject Summary { get; init; } = new();

    private static readonly JsonSerializerSettings Settings = new()
    {
        ContractResolver = ConfigSchema.Serializer.ContractResolver,
        Formatting = Formatting.Indented,
        DateTimeZoneHandling = DateTimeZoneHandling.Utc,
    };

    /// <summary>
    /// The summary read back as the result record the stage wrote it from (<see cref="SummaryOf{T}"/>), so stages
    /// exchange typed results rather than strings looked up in JSON.
    /// </summary>
    /// <exception cref="JsonException">The summary is not a <typeparamref name="T"/> (a key the type does not have, a wrong type).</exception>
    public T SummaryAs<T>() => Summary.ToObject<T>(ConfigSchema.Serializer)
        ?? throw new JsonException($"the {Stage} manifest's summary is empty, not a {typeof(T).Name}");

    /// <summary>A stage's result record as a manifest summary (snake_case keys, in the record's order).</summary>
    public static JObject SummaryOf<T>(T result) where T : notnull => JObject.FromObject(result, ConfigSchema.Serializer);

    /// <summary>Serialises the manifest.</summary>
    public string ToJson() => JsonConvert.SerializeObject(this, Settings);

    /// <summary>Reads a manifest, or returns null when the file is missing or unreadable.</summary>
    public static Manifest? TryRead(string path)
    {
        if (!File.Exists(path)) return null;
        try
        {
            return JsonConvert.DeserializeObject<Manifest>(File.ReadAllText(path), Settings);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The fingerprint inputs, typed.</summary>
    public FingerprintInputs Inputs() => new(
        FingerprintInputs.Value<string>("stage") ?? Stage,
        FingerprintInputs.Value<int>("schema_version"),
        FingerprintInputs["config"] as JObject ?? new JObject(),
        (FingerprintInputs["upstream"] as JObject)?.ToObject<Dictionary<string, string>>() ?? [],
        (FingerprintInputs["inputs"] as JObject)?.ToObject<Dictionary<string, string>>() ?? []);
}
