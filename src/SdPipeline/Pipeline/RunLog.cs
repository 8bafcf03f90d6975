using System.Text;
using Newtonsoft.Json;

namespace SdPipeline.Pipeline;

/// <summary>One line of the run log: a stage asked to run, and whether it was already cached.</summary>
/// <param name="Time">When it finished (UTC).</param>
/// <param name="Stage">The stage.</param>
/// <param name="Fingerprint">Its fingerprint.</param>
/// <param name="CacheHit">True when nothing was built.</param>
/// <param name="DurationSeconds">Time spent in this invocation.</param>
public sealed record RunLogEntry(
    [property: JsonProperty("time")] DateTime Time,
    [property: JsonProperty("stage")] string Stage,
    [property: JsonProperty("fingerprint")] string Fingerprint,
    [property: JsonProperty("cache_hit")] bool CacheHit,
    [property: JsonProperty("duration_seconds")] double DurationSeconds);

/// <summary>
/// <c>artifacts/_shared/runs.jsonl</c>: every <c>sdpipe run</c> appends what happened, so the report can say
/// which stages of the chain were cache hits (manifests only know how long the build took when it happened).
/// </summary>
public sealed class RunLog(ArtifactStore store)
{
    private string Path => System.IO.Path.Combine(store.SharedDirectory("runs"), "runs.jsonl");

    /// <summary>Appends an entry (one line, appended under a lock so concurrent runs do not interleave).</summary>
    public void Append(RunLogEntry entry)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        using var _ = FileLock.Acquire(Path + ".lock", TimeSpan.FromSeconds(30));
        File.AppendAllText(Path, JsonConvert.SerializeObject(entry) + "\n", new UTF8Encoding(false));
    }

    /// <summary>The newest entry for a stage's fingerprint, or null.</summary>
    public RunLogEntry? Latest(string stage, string fingerprint)
    {
        if (!File.Exists(Path)) return null;
        RunLogEntry? latest = null;
        foreach (string line in File.ReadLines(Path))
        {
            RunLogEntry? entry;
            try { entry = JsonConvert.DeserializeObject<RunLogEntry>(line); }
            catch (JsonException) { continue; } // a torn line from a crash costs one entry, not the log
            if (entry is not null && entry.Stage == stage && entry.Fingerprint == fingerprint) latest = entry;
        }
        return latest;
    }
}
