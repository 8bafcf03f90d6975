using Newtonsoft.Json;

namespace SdPipeline.Data;

/// <summary>One image-caption pair of a normalised dataset (a line of <c>items.jsonl</c>).</summary>
/// <param name="Id">Stable id, derived from the item's place in the source.</param>
/// <param name="File">Image path relative to the dataset folder.</param>
/// <param name="Caption">The caption (may be empty).</param>
/// <param name="Sha256">SHA-256 of the image file's bytes.</param>
/// <param name="Width">Image width in pixels.</param>
/// <param name="Height">Image height in pixels.</param>
/// <param name="Split"><c>train</c> or <c>heldout</c>.</param>
/// <param name="Source">Where in the source it came from (file, or file and row).</param>
public sealed record DatasetItem(
    [property: JsonProperty("id")] string Id,
    [property: JsonProperty("file")] string File,
    [property: JsonProperty("caption")] string Caption,
    [property: JsonProperty("sha256")] string Sha256,
    [property: JsonProperty("width")] int Width,
    [property: JsonProperty("height")] int Height,
    [property: JsonProperty("split")] string Split,
    [property: JsonProperty("source")] string Source)
{
    /// <summary>The training split's name.</summary>
    public const string TrainSplit = "train";

    /// <summary>The held-out split's name.</summary>
    public const string HeldoutSplit = "heldout";
}

/// <summary>A source item that was not taken, and why (a line of <c>skipped.jsonl</c>).</summary>
/// <param name="Source">Where in the source it is.</param>
/// <param name="Reason">Why it was skipped.</param>
public sealed record SkippedItem(
    [property: JsonProperty("source")] string Source,
    [property: JsonProperty("reason")] string Reason);
