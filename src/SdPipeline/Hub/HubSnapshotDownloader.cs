using SdPipeline.Downloads;
using SdPipeline.Pipeline;
using SdPipeline.Progress;

namespace SdPipeline.Hub;

/// <summary>
/// Downloads the files a pipeline needs from a Hub model repository into the shared Hub cache (see
/// <see cref="HubCache"/>): existing blobs are reused, partial ones resumed, every file verified
/// (SHA-256 for LFS files, the git blob id for small ones). With HF_HUB_OFFLINE the cache alone answers.
/// </summary>
public sealed class HubSnapshotDownloader(HubClient client, HubCache cache, HttpDownloader downloader, Action<string> log)
{
    /// <summary>Resolves and downloads <paramref name="model"/>; returns its snapshot.</summary>
    public async Task<HubSnapshot> DownloadAsync(HubModelRef model, string? variant, IProgressSink progress, CancellationToken cancellation)
    {
        if (client.Settings.Offline)
            return FromCache(cache, model, variant)
                ?? throw new StageFailedException($"{model}: HF_HUB_OFFLINE is set and the model is not in the Hub cache at {cache.Root}; download it once with network access");

        // A branch whose snapshot the cache holds whole is the commit its refs/ names: the plan fingerprinted that one
        // (FromCache), and the artifact must hold what its fingerprint says, not the branch's head of today.
        string commit = FromCache(cache, model, variant)?.Commit
            ?? await client.ResolveRevisionAsync(HubRepoKind.Model, model.Repo, model.Revision, cancellation);
        var files = PipelineFiles.Select(await client.ListFilesAsync(HubRepoKind.Model, model.Repo, commit, cancellation), variant);
        var hashes = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            // A small file's blob is named by its git oid: refuse one that is not a blob id (it could be a path).
            if (file.Sha256 is null && !HubPaths.IsCommit(file.GitOid))
                throw HubClient.Refused($"{model}: the Hub gives {file.Path} the git oid '{file.GitOid}', which is not a 40-hex-digit blob id");
            string hash = file.Sha256 ?? file.GitOid;
            string blob = cache.BlobPath(HubRepoKind.Model, model.Repo, hash);
            var request = new DownloadRequest(client.FileUrl(HubRepoKind.Model, model.Repo, commit, file.Path), blob, file.Sha256, file.Size, $"{model.Repo}: {file.Path}",
                GitBlobId: file.Sha256 is null ? file.GitOid : null, LockFile: cache.LockPath(HubRepoKind.Model, model.Repo, hash));
            long fetched = await downloader.DownloadAsync(request, progress, cancellation);
            if (fetched == 0) log($"{model.Repo}: {file.Path} already in the Hub cache");
            cache.Link(HubRepoKind.Model, model.Repo, commit, file.Path, hash);
            hashes[file.Path] = hash;
        }
        cache.WriteRef(HubRepoKind.Model, model.Repo, model.Revision, commit);
        return new HubSnapshot(model, commit, cache.SnapshotFolder(HubRepoKind.Model, model.Repo, commit), hashes);
    }

    /// <summary>
    /// The snapshot already in the cache (the ref's last resolution, and every needed file present), or
    /// null. Used offline and by <c>sdpipe plan</c>, which must not need the network.
    /// </summary>
    public static HubSnapshot? FromCache(HubCache cache, HubModelRef model, string? variant)
    {
        string? commit = cache.ResolveRef(HubRepoKind.Model, model.Repo, model.Revision);
        if (commit is null) return null;
        string folder = cache.SnapshotFolder(HubRepoKind.Model, model.Repo, commit);
        if (!Directory.Exists(folder)) return null;
        var present = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(path => (path, relative: Path.GetRelativePath(folder, path).Replace('\\', '/'), blob: Path.GetFileName(new FileInfo(path).LinkTarget ?? path)))
            .Where(f => File.Exists(f.path))
            .Select(f => new HubFile(f.relative, new FileInfo(f.path).Length, f.blob.Length == 64 ? f.blob : null, f.blob))
            .ToList();
        // A variant asked for and none of its files here: this cache holds another download, and the Hub says whether it has one.
        if (variant is not null && !present.Any(f => Weights.DiffusersFolder.IsVariantFile(f.Path, variant))) return null;
        IReadOnlyList<HubFile> needed;
        try
        {
            needed = PipelineFiles.Select(present, variant);
        }
        catch (Weights.WeightsException)
        {
            return null; // a partial snapshot (another tool downloaded only some components)
        }
        return new HubSnapshot(model, commit, folder, needed.ToDictionary(f => f.Path, f => f.Sha256 ?? f.GitOid, StringComparer.Ordinal));
    }
}
