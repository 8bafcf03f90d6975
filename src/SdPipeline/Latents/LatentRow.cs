using Newtonsoft.Json;

namespace SdPipeline.Latents;

/// <summary>One cached (image, augmentation) pair: a row of a shard, listed in <c>index.json</c>.</summary>
/// <param name="Id">Dataset item id.</param>
/// <param name="Caption">Its caption.</param>
/// <param name="SourceSha256">SHA-256 of the source image file.</param>
/// <param name="Split"><c>train</c> or <c>heldout</c>.</param>
/// <param name="Bucket">Resolution "WxH".</param>
/// <param name="Crop">Crop box in the resized image: left, top, width, height.</param>
/// <param name="Flip">Flipped left-right.</param>
/// <param name="Variant">Augmentation variant number (0-based).</param>
/// <param name="Shard">Shard file name.</param>
/// <param name="Row">Row inside the shard.</param>
public sealed record LatentRow(
    [property: JsonProperty("id")] string Id,
    [property: JsonProperty("caption")] string Caption,
    [property: JsonProperty("source_sha256")] string SourceSha256,
    [property: JsonProperty("split")] string Split,
    [property: JsonProperty("bucket")] string Bucket,
    [property: JsonProperty("crop")] int[] Crop,
    [property: JsonProperty("flip")] bool Flip,
    [property: JsonProperty("variant")] int Variant,
    [property: JsonProperty("shard")] string Shard,
    [property: JsonProperty("row")] int Row);
