namespace SdPipeline.Data;

/// <summary>An item as a source format yields it, before validation.</summary>
/// <param name="Source">Where in the source it is (used for its id and in messages).</param>
/// <param name="Caption">The caption, or null when the source has none for it.</param>
/// <param name="ReadImage">Reads the image's encoded bytes; null when the image file is missing.</param>
/// <param name="Split">The split the source assigns, or null to assign one by hash.</param>
/// <param name="Problem">Why the source already knows the item is unusable (a file_name outside the dataset, a caption that is not text); null when it does not.</param>
public sealed record CandidateItem(string Source, string? Caption, Func<byte[]>? ReadImage, string? Split = null, string? Problem = null);
