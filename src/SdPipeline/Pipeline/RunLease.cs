using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Files;

namespace SdPipeline.Pipeline;

/// <summary>
/// The artifact folders a running <c>sdpipe run</c> stands on: every stage's of its config and what a stage continues,
/// registered in the store for as long as the process runs, so <c>sdpipe gc</c> with another config leaves them alone.
/// A chain runs one process per stage, and the build lock of the running stage covers only that stage and what it reads:
/// without the lease, a gc between two stages removed the model a chain had just built for its next stage.
/// A lease is a list (<c>ID.json</c>) beside a lock file (<c>ID.lock</c>) its process holds; the OS releases the lock
/// however the process ends, so a list whose lock can be taken is a dead run's, and gc removes it.
/// </summary>
public sealed class RunLease : IDisposable
{
    private const string FolderName = "leases";
    private readonly FileLock _lock;
    private readonly string _list;
    private readonly string _lockFile;

    private RunLease(FileLock held, string list, string lockFile)
    {
        _lock = held;
        _list = list;
        _lockFile = lockFile;
    }

    /// <summary>Registers <paramref name="plans"/>' artifact folders, and the ones they continue, for this process.</summary>
    public static RunLease Take(ArtifactStore store, IEnumerable<StagePlan> plans)
    {
        var folders = plans.Where(p => p.Fingerprint is not null)
            .SelectMany(p => p.Continuation is { } continued ? new[] { (p.Stage.Name, p.Fingerprint!), (p.Stage.Name, continued.Fingerprint) } : [(p.Stage.Name, p.Fingerprint!)])
            .Select(f => $"{f.Item1}/{ArtifactStore.Short(f.Item2)}")
            .Distinct()
            .ToList();
        string directory = store.SharedDirectory(FolderName);
        Directory.CreateDirectory(directory);
        string id = $"{Environment.ProcessId}-{Guid.NewGuid():N}";
        string lockFile = Path.Combine(directory, id + ".lock");
        // The lock first: a list gc can see always has its holder.
        var held = FileLock.Acquire(lockFile, TimeSpan.Zero);
        string list = Path.Combine(directory, id + ".json");
        try
        {
            AtomicFile.WriteAllText(list, new JObject { ["pid"] = Environment.ProcessId, ["folders"] = new JArray(folders) }.ToString(Formatting.Indented));
        }
        catch
        {
            held.Dispose();
            File.Delete(lockFile);
            throw;
        }
        return new RunLease(held, list, lockFile);
    }

    /// <summary>
    /// The artifact folders (and their interrupted builds) of every live run's lease, by full path, each with the process id that holds it. The lists
    /// of runs that are gone are deleted unless <paramref name="dryRun"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, int> HeldFolders(ArtifactStore store, bool dryRun)
    {
        var held = new Dictionary<string, int>(StringComparer.Ordinal);
        string directory = store.SharedDirectory(FolderName);
        if (!Directory.Exists(directory)) return held;
        foreach (string list in Directory.EnumerateFiles(directory, "*.json"))
        {
            string lockFile = Path.ChangeExtension(list, ".lock");
            FileLock? dead;
            try
            {
                dead = FileLock.Acquire(lockFile, TimeSpan.Zero);
            }
            catch (TimeoutException)
            {
                dead = null;
            }
            if (dead is not null)
            {
                using (dead)
                    if (!dryRun)
                    {
                        File.Delete(list);
                        File.Delete(lockFile);
                    }
                continue;
            }
            JObject lease;
            try
            {
                lease = JObject.Parse(File.ReadAllText(list));
            }
            catch (Exception e) when (e is IOException or JsonException)
            {
                continue; // ended between the lock and the read
            }
            int pid = lease.Value<int?>("pid") ?? 0;
            foreach (var folder in lease["folders"] as JArray ?? [])
                if (folder.Type == JTokenType.String && folder.Value<string>()!.Split('/') is [var stage, var shortFp])
                {
                    // Its interrupted build too: the run resumes it when the chain gets there.
                    held.TryAdd(store.ArtifactDirectory(stage, shortFp), pid);
                    held.TryAdd(Path.Combine(store.StageDirectory(stage), $".{shortFp}.partial"), pid);
                }
        }
        return held;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        File.Delete(_list);
        File.Delete(_lockFile);
        _lock.Dispose();
    }
}
