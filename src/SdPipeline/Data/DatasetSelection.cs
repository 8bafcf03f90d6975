using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// Which dataset a config means: the registry entry <c>download.dataset</c>, or — when <c>download.source</c> is set —
/// an entry made from that one setting, so a folder, archive, URL or Hub dataset needs no edit of <c>datasets.json</c>.
/// The made entry is an ordinary registry entry (its canonical JSON is the dataset's identity, a local source's content
/// is hashed as for registry entries), so every source kind keeps its download, resume and verification code.
/// </summary>
public static class DatasetSelection
{
    /// <summary>The name the made entry goes by in logs and summaries.</summary>
    public const string SourceEntryName = "download.source";

    /// <summary>The registry to read and the entry's name in it.</summary>
    /// <exception cref="StageInputException">A malformed registry, or an empty <c>hf:</c> reference.</exception>
    public static (DatasetRegistry Registry, string Name) Resolve(DownloadSection settings)
    {
        if (settings.Source.Length == 0) return (DatasetRegistry.Load(settings.Registry), settings.Dataset);
        return (DatasetRegistry.FromEntry(Directory.GetCurrentDirectory(), SourceEntryName, Entry(settings.Source)), SourceEntryName);
    }

    /// <summary>The registry entry <paramref name="source"/> stands for.</summary>
    public static JObject Entry(string source)
    {
        var entry = new JObject { ["description"] = $"download.source={source}" };
        if (source.StartsWith("hf:", StringComparison.Ordinal))
        {
            string repo = source["hf:".Length..];
            int at = repo.IndexOf('@');
            if (at >= 0)
            {
                entry["revision"] = repo[(at + 1)..];
                repo = repo[..at];
            }
            if (repo.Split('/') is not [{ Length: > 0 }, { Length: > 0 }])
                throw new StageInputException($"download.source '{source}': expected hf:org/name or hf:org/name@revision");
            entry["source"] = "hf:" + repo;
        }
        else
        {
            entry["source"] = source;
        }
        return entry;
    }
}
