namespace SdPipeline.Pipeline;

/// <summary>
/// Removes artifact folders the given plan does not reference, and the leftovers of interrupted builds
/// (partial and trash folders) that no running process holds. Plain collection removes all of them and
/// keeps the shared caches; bounded collection (<see cref="GcLimits"/>, for a store that persists on a
/// self-hosted runner) removes only what is older than the age limit or, least recently used first, what
/// it takes to fit the size limit, and counts dataset downloads (<c>_shared/downloads</c>) among the
/// candidates. The current config's artifacts, and its interrupted build, are never removed; nor are those a running
/// <c>sdpipe run</c> leases (<see cref="RunLease"/>) or a running build reads.
/// </summary>
public sealed class GarbageCollector(ArtifactStore store, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Removes what <paramref name="plans"/> does not reference; with <paramref name="dryRun"/>, only lists it.</summary>
    public IReadOnlyList<RemovedArtifact> Collect(IReadOnlyList<StagePlan> plans, bool dryRun) =>
        Collect(plans, new GcLimits(), dryRun).Removed;

    /// <summary>
    /// Removes, within <paramref name="limits"/>, what <paramref name="plans"/> does not reference; without limits,
    /// everything it does not reference. With <paramref name="dryRun"/> it only lists what would go.
    /// </summary>
    /// <exception cref="Config.ConfigException">The store's root exists but is not an sdpipe store.</exception>
    public GcResult Collect(IReadOnlyList<StagePlan> plans, GcLimits limits, bool dryRun)
    {
        RequireStore(plans, dryRun);
        var kept = new List<string>();
        var candidates = StageCandidates(plans, dryRun, kept).ToList();
        if (!limits.IsEmpty) candidates.AddRange(DownloadCandidates(kept));

        long before = StoreSize(), after = before;
        var removed = new List<RemovedArtifact>();
        void Remove(Candidate candidate, string reason)
        {
            using var held = candidate.Lock();
            if (held is null)
            {
                kept.Add($"{Relative(candidate.Path)} is in use by a running build");
                return;
            }
            removed.Add(new RemovedArtifact(candidate.Path, candidate.Bytes, reason, candidate.LastUsed));
            after -= candidate.Bytes;
            if (!dryRun) Delete(candidate.Path);
        }

        if (limits.IsEmpty)
        {
            foreach (var candidate in candidates) Remove(candidate, candidate.IsLeftover ? "leftover of an interrupted build" : "unreferenced");
            return new GcResult(removed, before, after, kept);
        }

        var now = _time.GetUtcNow().UtcDateTime;
        var remaining = new List<Candidate>();
        foreach (var candidate in candidates)
        {
            if (candidate.IsTrash) Remove(candidate, "leftover of an interrupted rename");
            else if (limits.OlderThan is { } age && candidate.LastUsed < now - age)
                Remove(candidate, $"last used {candidate.LastUsed:yyyy-MM-dd}, more than {age.TotalDays:0.#} days ago");
            else remaining.Add(candidate);
        }

        if (limits.MaxBytes is { } max)
        {
            foreach (var candidate in remaining.OrderBy(c => c.LastUsed).ThenBy(c => c.Path, StringComparer.Ordinal))
            {
                if (after <= max) break;
                Remove(candidate, $"least recently used (last used {candidate.LastUsed:yyyy-MM-dd}) while the store is over {Progress.ProgressFormat.Bytes(max)}");
            }
            if (after > max) kept.AddRange(Unmanaged(plans));
        }
        return new GcResult(removed, before, after, kept);
    }

    /// <summary>
    /// Refuses a root that is not a store: one without the marker <see cref="ArtifactStore.Build"/> writes, unless
    /// it holds a finished artifact of one of the stages (a store from before the marker, which is then marked).
    /// </summary>
    private void RequireStore(IReadOnlyList<StagePlan> plans, bool dryRun)
    {
        if (!Directory.Exists(store.Root) || StoreMarkers.IsMarkedStore(store.Root) || !Directory.EnumerateFileSystemEntries(store.Root).Any())
            return;
        bool holdsArtifacts = plans.Any(plan =>
        {
            string stageDir = store.StageDirectory(plan.Stage.Name);
            return Directory.Exists(stageDir) && !IsLink(stageDir) && Directory.EnumerateDirectories(stageDir)
                .Any(folder => Recognise(plan.Stage.Name, folder, Path.GetFileName(folder)) is { Kind: FolderKind.Artifact });
        });
        if (!holdsArtifacts)
            throw new Config.ConfigException($"{store.Root} is not an sdpipe artifact store (no {StoreMarkers.StoreFileName} marker and no artifact " +
                "of any stage): gc removes nothing from a folder sdpipe did not make; check --artifacts");
        if (!dryRun) StoreMarkers.MarkStore(store.Root);
    }

    /// <summary>Top-level folders of the store that are neither a stage's nor the shared caches (benchmark cells, bench results), with their size.</summary>
    private IEnumerable<string> Unmanaged(IReadOnlyList<StagePlan> plans)
    {
        var stages = plans.Select(p => p.Stage.Name).Append("_shared").ToHashSet();
        foreach (string folder in Directory.EnumerateDirectories(store.Root).Order(StringComparer.Ordinal))
            if (!stages.Contains(Path.GetFileName(folder)) && Size(folder) is > 0 and var bytes)
                yield return $"{Path.GetFileName(folder)}/ ({Progress.ProgressFormat.Bytes(bytes)}) is not a stage's: gc leaves it alone";
    }

    /// <summary>Size of every file in the store, links not followed (a report's deliverables link other artifacts).</summary>
    public long StoreSize() => Directory.Exists(store.Root) ? Size(store.Root) : 0;

    private IEnumerable<Candidate> StageCandidates(IReadOnlyList<StagePlan> plans, bool dryRun, List<string> kept)
    {
        var runLog = new RunLog(store);
        var inUse = UpstreamOfRunningBuilds(plans);
        var leased = RunLease.HeldFolders(store, dryRun);
        foreach (var plan in plans)
        {
            string stageDir = store.StageDirectory(plan.Stage.Name);
            if (!Directory.Exists(stageDir)) continue;
            if (IsLink(stageDir))
            {
                kept.Add($"{plan.Stage.Name}/ is a link to another folder: gc does not follow it");
                continue;
            }
            string? keep = plan.Fingerprint is null ? null : Path.GetFileName(store.ArtifactDirectory(plan.Stage.Name, plan.Fingerprint));
            if (keep is null)
            {
                // Which folder (and which interrupted build) is the current config's is unknown, so none of them may go.
                kept.Add($"{plan.Stage.Name}: its fingerprint cannot be resolved ({string.Join("; ", plan.Reasons)}), so its artifacts are kept");
                continue;
            }
            // A stale stage that continues an earlier artifact (a raised train.max_train_steps) builds from it: it stays too.
            string? continued = plan.Continuation is { } continuation ? Path.GetFileName(store.ArtifactDirectory(plan.Stage.Name, continuation.Fingerprint)) : null;
            foreach (string folder in Directory.EnumerateDirectories(stageDir).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(folder);
                if (name == keep || name == $".{keep}.partial") continue;
                if (name == continued)
                {
                    kept.Add($"{Relative(folder)} is what {plan.Stage.Name} continues from ({plan.Continuation!.From})");
                    continue;
                }
                var kind = Recognise(plan.Stage.Name, folder, name);
                if (kind is null)
                {
                    kept.Add($"{Relative(folder)} was not made by sdpipe (no manifest or build marker of this stage): gc leaves it alone");
                    continue;
                }
                if (inUse.Contains(folder))
                {
                    kept.Add($"{Relative(folder)} is read by a running build");
                    continue;
                }
                if (leased.TryGetValue(folder, out int pid))
                {
                    kept.Add($"{Relative(folder)} belongs to the config of a running sdpipe (process {pid})");
                    continue;
                }
                // Folders are FP, .FP.partial and .FP.trash-GUID; each is guarded by .FP.lock.
                string lockFile = Path.Combine(stageDir, $".{kind.Value.ShortFingerprint}.lock");
                bool hidden = kind.Value.Kind != FolderKind.Artifact;
                yield return new Candidate(folder, Size(folder), LastUsed(plan.Stage.Name, folder, hidden, runLog),
                    IsLeftover: hidden, IsTrash: kind.Value.Kind == FolderKind.Trash, () => TryLock(lockFile));
            }
        }
    }

    private enum FolderKind
    {
        Artifact,
        Partial,
        Trash,
    }

    /// <summary>
    /// What a folder in a stage's directory is, when sdpipe made it: a finished artifact (its manifest names this
    /// stage and this folder's fingerprint), a build (its marker or manifest does), or a replaced artifact on its
    /// way out (the <c>.FP.trash-GUID</c> name only <see cref="ArtifactStore"/> gives). Anything else, links
    /// included, is null: someone else's.
    /// </summary>
    private static (FolderKind Kind, string ShortFingerprint)? Recognise(string stage, string folder, string name)
    {
        if (IsLink(folder)) return null;
        bool Owns(Manifest? manifest, string shortFp) =>
            manifest is not null && manifest.Stage == stage && ArtifactStore.Short(manifest.Fingerprint) == shortFp;
        Manifest? ManifestIn() => Manifest.TryRead(Path.Combine(folder, Manifest.FileName));

        if (StoreMarkers.ArtifactName().IsMatch(name))
            return Owns(ManifestIn(), name) ? (FolderKind.Artifact, name) : null;
        if (StoreMarkers.PartialName().Match(name) is { Success: true } partial)
        {
            string shortFp = partial.Groups[1].Value;
            var marker = StoreMarkers.ReadPartial(folder);
            bool ours = marker is not null && marker.Stage == stage && ArtifactStore.Short(marker.Fingerprint) == shortFp;
            return ours || Owns(ManifestIn(), shortFp) ? (FolderKind.Partial, shortFp) : null;
        }
        if (StoreMarkers.TrashName().Match(name) is { Success: true } trash)
            return (FolderKind.Trash, trash.Groups[1].Value);
        return null;
    }

    /// <summary>
    /// The upstream artifact folders of every build in progress (its lock held by another process): a running
    /// train stage reads its latents artifact, which the current config may no longer reference.
    /// </summary>
    private HashSet<string> UpstreamOfRunningBuilds(IReadOnlyList<StagePlan> plans)
    {
        var inUse = new HashSet<string>(StringComparer.Ordinal);
        foreach (var plan in plans)
        {
            string stageDir = store.StageDirectory(plan.Stage.Name);
            if (!Directory.Exists(stageDir) || IsLink(stageDir)) continue;
            foreach (string lockFile in Directory.EnumerateFiles(stageDir, ".*.lock"))
            {
                using (var held = TryLock(lockFile))
                    if (held is not null) continue;
                string partial = lockFile[..^".lock".Length] + ".partial";
                if (StoreMarkers.ReadPartial(partial) is not { } marker) continue;
                foreach (var (stage, fingerprint) in marker.Upstream)
                    inUse.Add(store.ArtifactDirectory(stage, fingerprint));
            }
        }
        return inUse;
    }

    /// <summary>
    /// Dataset downloads, one candidate per source (<c>url/KEY</c>, <c>hf/datasets--ORG--NAME</c>), last used when
    /// any of its files was last read or written. Skipped while a download stage is building (it may be reading them).
    /// </summary>
    private IEnumerable<Candidate> DownloadCandidates(List<string> kept)
    {
        string downloads = store.SharedDirectory("downloads");
        if (!Directory.Exists(downloads)) yield break;
        var downloadLocks = Directory.Exists(store.StageDirectory("download"))
            ? Directory.GetFiles(store.StageDirectory("download"), ".*.lock")
            : [];
        foreach (string lockFile in downloadLocks)
        {
            using var held = TryLock(lockFile);
            if (held is null)
            {
                kept.Add("_shared/downloads: a download stage is building, so downloads are kept");
                yield break;
            }
        }
        foreach (string kind in Directory.EnumerateFileSystemEntries(downloads).Order(StringComparer.Ordinal))
        {
            IEnumerable<string> entries = Directory.Exists(kind) && !IsLink(kind) ? Directory.EnumerateFileSystemEntries(kind).Order(StringComparer.Ordinal) : [kind];
            foreach (string entry in entries)
            {
                yield return new Candidate(entry, Directory.Exists(entry) && !IsLink(entry) ? Size(entry) : new FileInfo(entry).Length,
                    NewestUse(entry, includeAccess: true), IsLeftover: false, IsTrash: false, () => NoLock.Instance);
            }
        }
    }

    /// <summary>When an artifact was last built or found cached: its manifest's finish time or the run log's newest use, whichever is later.</summary>
    private static DateTime LastUsed(string stage, string folder, bool hidden, RunLog runLog)
    {
        if (!hidden && Manifest.TryRead(Path.Combine(folder, Manifest.FileName)) is { } manifest)
        {
            var logged = runLog.Latest(stage, manifest.Fingerprint)?.Time;
            return logged is { } time && time > manifest.FinishedAt ? time : manifest.FinishedAt;
        }
        return NewestUse(folder, includeAccess: false); // a partial build is "used" while it is being written
    }

    private static DateTime NewestUse(string path, bool includeAccess)
    {
        // A folder's access time moves whenever it is listed (gc lists it too), so only files' reads count.
        DateTime Use(FileInfo info) => includeAccess && info.LastAccessTimeUtc > info.LastWriteTimeUtc ? info.LastAccessTimeUtc : info.LastWriteTimeUtc;
        if (!Directory.Exists(path) || IsLink(path)) return Use(new FileInfo(path));
        var newest = new DirectoryInfo(path).LastWriteTimeUtc;
        foreach (var file in Files(path))
        {
            var used = Use(file);
            if (used > newest) newest = used;
        }
        return newest;
    }

    private static long Size(string folder) => Files(folder).Sum(f => f.Length);

    /// <summary>Every regular file under <paramref name="folder"/>, without following links to folders.</summary>
    private static IEnumerable<FileInfo> Files(string folder)
    {
        var pending = new Stack<DirectoryInfo>([new DirectoryInfo(folder)]);
        while (pending.Count > 0)
        {
            foreach (var entry in pending.Pop().EnumerateFileSystemInfos())
            {
                if (entry.LinkTarget is not null) continue; // counted where it lives
                if (entry is DirectoryInfo directory) pending.Push(directory);
                else if (entry is FileInfo file) yield return file;
            }
        }
    }

    private static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    private static void Delete(string path)
    {
        if (Directory.Exists(path) && !IsLink(path)) Directory.Delete(path, recursive: true);
        else File.Delete(path);
    }

    private string Relative(string path) => Path.GetRelativePath(store.Root, path);

    private static IDisposable? TryLock(string path)
    {
        try
        {
            return FileLock.Acquire(path, TimeSpan.Zero);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>A folder (or file) that may be removed, with what it would free and when it was last used.</summary>
    private sealed record Candidate(string Path, long Bytes, DateTime LastUsed, bool IsLeftover, bool IsTrash, Func<IDisposable?> Lock);

    private sealed class NoLock : IDisposable
    {
        public static readonly NoLock Instance = new();

        public void Dispose()
        {
        }
    }
}
