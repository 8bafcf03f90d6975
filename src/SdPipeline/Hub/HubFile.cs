namespace SdPipeline.Hub;

/// <summary>A file of a Hub repository at a commit.</summary>
/// <param name="Path">Path inside the repository.</param>
/// <param name="Size">Size in bytes.</param>
/// <param name="Sha256">SHA-256 for LFS files (the Hub stores it); null for small files kept in git.</param>
/// <param name="GitOid">The git blob id (the name of small files in the Hub cache's blobs folder).</param>
public sealed record HubFile(string Path, long Size, string? Sha256, string GitOid);
