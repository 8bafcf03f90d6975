namespace SdPipeline.Downloads;

/// <summary>One file to fetch.</summary>
/// <param name="Url">Where from.</param>
/// <param name="Destination">Where to (the partial download sits beside it as <c>.part</c>).</param>
/// <param name="Sha256">Expected SHA-256 (lowercase hex), or null.</param>
/// <param name="Size">Expected size in bytes, or null.</param>
/// <param name="Label">What to call it in messages: the dataset or model it belongs to, and the file.</param>
/// <param name="GitBlobId">Expected git blob id (lowercase hex SHA-1 of "blob SIZE\0" and the content), the only hash the Hub gives a file kept in git rather than LFS; or null.</param>
/// <param name="LockFile">The lock two processes fetching this file share (default: the destination + <c>.lock</c>).</param>
public sealed record DownloadRequest(Uri Url, string Destination, string? Sha256, long? Size, string Label, string? GitBlobId = null, string? LockFile = null);
