using SdPipeline.Files;

namespace SdPipeline.Hub;

/// <summary>
/// The Hugging Face Hub cache layout huggingface_hub uses (and diffusers reads), so downloads are shared
/// both ways: <c>models--ORG--NAME/blobs/HASH</c> holds each file once, named by its SHA-256 (LFS files)
/// or git blob id; <c>snapshots/COMMIT/PATH</c> are relative symlinks into blobs; <c>refs/BRANCH</c>
/// holds the commit a branch or tag resolved to.
/// </summary>
public sealed class HubCache(string root)
{
    /// <summary>The cache root (HF_HUB_CACHE).</summary>
    public string Root { get; } = root;

    /// <summary>The folder of one repository.</summary>
    public string RepoFolder(HubRepoKind kind, string repo) =>
        Path.Combine(Root, $"{(kind == HubRepoKind.Dataset ? "datasets" : "models")}--{repo.Replace("/", "--")}");

    /// <summary>Where a blob is stored.</summary>
    public string BlobPath(HubRepoKind kind, string repo, string hash) => Path.Combine(RepoFolder(kind, repo), "blobs", hash);

    /// <summary>
    /// The lock taken while a blob downloads: where huggingface_hub takes it (<c>.locks/REPO_FOLDER/HASH.lock</c>, an
    /// flock as both tools take it), so neither tool writes a blob's <c>.incomplete</c> file while the other does.
    /// </summary>
    public string LockPath(HubRepoKind kind, string repo, string hash) =>
        Path.Combine(Root, ".locks", Path.GetFileName(RepoFolder(kind, repo)), hash + ".lock");

    /// <summary>The snapshot folder of a commit.</summary>
    public string SnapshotFolder(HubRepoKind kind, string repo, string commit) => Path.Combine(RepoFolder(kind, repo), "snapshots", commit);

    /// <summary>The commit a branch or tag last resolved to, or null. A full commit id resolves to itself.</summary>
    public string? ResolveRef(HubRepoKind kind, string repo, string revision)
    {
        if (IsCommit(revision)) return revision;
        if (!HubPaths.IsSafeRevision(revision)) return null;
        string path = Path.Combine(RepoFolder(kind, repo), "refs", revision);
        if (!File.Exists(path)) return null;
        // Another tool may have written the file: only a commit id may name a snapshot folder.
        string commit = File.ReadAllText(path).Trim();
        return HubPaths.IsCommit(commit) ? commit : null;
    }

    /// <summary>
    /// Remembers that <paramref name="revision"/> resolved to <paramref name="commit"/>. A ref that already says so is
    /// left as it is, as huggingface_hub leaves it: a runner's pre-filled cache mounted read-only is only read.
    /// </summary>
    public void WriteRef(HubRepoKind kind, string repo, string revision, string commit)
    {
        if (IsCommit(revision)) return;
        if (!HubPaths.IsSafeRevision(revision) || !HubPaths.IsCommit(commit))
            throw new InvalidOperationException($"refusing to write ref '{revision}' → '{commit}' into the Hub cache: not a revision name and a commit id");
        if (ResolveRef(kind, repo, revision) == commit) return;
        string path = Path.Combine(RepoFolder(kind, repo), "refs", revision);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, commit);
    }

    /// <summary>Links <c>snapshots/COMMIT/PATH</c> to its blob with a relative symlink, as huggingface_hub does.</summary>
    public void Link(HubRepoKind kind, string repo, string commit, string path, string hash)
    {
        // Callers pass what HubClient checked; this is the last line before a symlink is made.
        if (!HubPaths.IsCommit(commit) || HubPaths.RelativePathProblem(path) is not null || !(HubPaths.IsSha256(hash) || HubPaths.IsCommit(hash)))
            throw new InvalidOperationException($"refusing to link '{path}' at commit '{commit}' to blob '{hash}' in the Hub cache: not a commit, a repository path and a hash");
        string link = Path.Combine(SnapshotFolder(kind, repo, commit), path);
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        string target = Path.GetRelativePath(Path.GetDirectoryName(link)!, BlobPath(kind, repo, hash));
        if (File.Exists(link) || new FileInfo(link).LinkTarget is not null)
        {
            if (new FileInfo(link).LinkTarget == target) return;
            File.Delete(link);
        }
        File.CreateSymbolicLink(link, target);
    }

    /// <summary>Whether a string is a full 40-hex-digit commit id.</summary>
    public static bool IsCommit(string revision) => HubPaths.IsCommit(revision);
}
