using Newtonsoft.Json;
using SdPipeline.Files;
using SdPipeline.Pipeline;

namespace SdPipeline.Latents;

/// <summary>
/// <c>index.json</c> of a latent cache. The shards (<c>shard-WxH-NNNNN.safetensors</c>) hold, per row:
/// <c>mean</c> and <c>std</c> [n, C, h, w] of the VAE posterior (unscaled: training computes
/// <c>(mean + std·ε)·scaling_factor</c>, diffusers' <c>latent_dist.sample() * scaling_factor</c>, operation for
/// operation), <c>input_ids</c> [n, 77] and <c>text_embeddings</c> [n, 77, D] of the frozen text encoder.
/// </summary>
public sealed record LatentIndex
{
    /// <summary>The file name inside the latents artifact.</summary>
    public const string FileName = "index.json";

    /// <summary>Format version of the cache.</summary>
    [JsonProperty("format")]
    public int Format { get; init; } = 1;

    /// <summary>The VAE's scaling factor (applied by training, not stored in the tensors).</summary>
    [JsonProperty("scaling_factor")]
    public double ScalingFactor { get; init; }

    /// <summary>The VAE's shift factor, if any (SD 1.x/2.x: none).</summary>
    [JsonProperty("shift_factor")]
    public double? ShiftFactor { get; init; }

    /// <summary>Text-encoder layers skipped for the cached embeddings.</summary>
    [JsonProperty("clip_skip")]
    public int ClipSkip { get; init; }

    /// <summary>Whether the cache is an SDXL model's (both encoders, the pooled embedding, the micro-conditioning); absent in SD caches.</summary>
    [JsonProperty("sdxl", DefaultValueHandling = DefaultValueHandling.Ignore)]
    public bool Sdxl { get; init; }

    /// <summary>Every row, in shard order.</summary>
    [JsonProperty("rows")]
    public required IReadOnlyList<LatentRow> Rows { get; init; }

    /// <summary>Items that could not be used, with reasons.</summary>
    [JsonProperty("skipped")]
    public IReadOnlyList<Data.SkippedItem> Skipped { get; init; } = [];

    /// <summary>Writes the index atomically.</summary>
    public void Write(string folder) =>
        AtomicFile.WriteAllText(Path.Combine(folder, FileName), JsonConvert.SerializeObject(this, Formatting.Indented));

    /// <summary>Reads the index of a latents artifact.</summary>
    public static LatentIndex Read(string folder) =>
        JsonConvert.DeserializeObject<LatentIndex>(File.ReadAllText(Path.Combine(folder, FileName)))
        ?? throw new InvalidDataException($"{Path.Combine(folder, FileName)}: empty");
}
