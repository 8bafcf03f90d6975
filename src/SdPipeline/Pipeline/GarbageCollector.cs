namespace SdPipeline.Pipeline;

/// <summary>A folder the garbage collector removed (or would remove).</summary>
/// <param name="Path">The folder.</param>
/// <param name="Bytes">Its size.</param>
public sealed record RemovedArtifact(string Path, long Bytes);

/// <summary>
/// Removes every artifact folder the given plan does not reference, and the leftovers of interrupted
/// builds (partial and trash folders, lock files) that no running process holds. The shared caches
/// (downloads, file hashes) are kept.
/// </summary>
public sealed class GarbageCollector(ArtifactStore store)
{
    /// <summary>Removes what <paramref name="plans"/> does not reference; with <paramref name="dryRun"/>, only lists it.</summary>
    public IReadOnlyList<RemovedArtifact> Collect(IReadOnlyList<StagePlan> plans, bool dryRun)
    {
        var removed = new List<RemovedArtifact>();
        foreach (var plan in plans)
        {
            string stageDir = store.StageDirectory(plan.Stage.Name);
            if (!Directory.Exists(stageDir)) continue;
            string? keep = plan.Fingerprint is null ? null : Path.GetFileName(store.ArtifactDirectory(plan.Stage.Name, plan.Fingerprint));
            foreach (string folder in Directory.EnumerateDirectories(stageDir).Order(StringComparer.Ordinal))
            {
                string name = Path.GetFileName(folder);
                bool current = keep is not null && (name == keep || name == $".{keep}.partial");
                if (plan.Fingerprint is null && !name.StartsWith('.')) continue; // unresolved stage: keep its artifacts
                if (current) continue;
                string lockFile = name.StartsWith('.') ? Path.Combine(stageDir, $".{name.Split('.')[1]}.lock") : Path.Combine(stageDir, $".{name}.lock");
                using var held = TryLock(lockFile);
                if (held is null) continue; // a process is building it right now
                removed.Add(new RemovedArtifact(folder, Size(folder)));
                if (!dryRun) Directory.Delete(folder, recursive: true);
            }
        }
        return removed;
    }

    private static FileLock? TryLock(string path)
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

    private static long Size(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
}
