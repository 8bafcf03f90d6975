namespace SdPipeline.Hub;

/// <summary>A model snapshot in the Hub cache: the folder diffusers would load, and what its files are.</summary>
/// <param name="Model">What was asked for.</param>
/// <param name="Commit">The commit it resolved to.</param>
/// <param name="Folder"><c>snapshots/COMMIT</c>: a diffusers folder.</param>
/// <param name="ContentHashes">Path → content hash (SHA-256 for LFS files, git blob id for small ones).</param>
public sealed record HubSnapshot(HubModelRef Model, string Commit, string Folder, IReadOnlyDictionary<string, string> ContentHashes);
