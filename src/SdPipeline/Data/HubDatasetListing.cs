using Newtonsoft.Json;
using SdPipeline.Files;
using SdPipeline.Hub;

namespace SdPipeline.Data;

/// <summary>
/// What a Hub dataset's commit held, kept beside its downloaded files (<c>listings/COMMIT.json</c> in the repository's
/// folder of the download cache), so that with HF_HUB_OFFLINE the stage knows which files make the dataset — as the
/// Hub's tree listing told it online — and can normalise it again without the network.
/// </summary>
internal static class HubDatasetListing
{
    /// <summary>Records the files of <paramref name="commit"/>.</summary>
    public static void Write(string repoFolder, string commit, IReadOnlyList<HubFile> files)
    {
        string path = PathOf(repoFolder, commit);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, JsonConvert.SerializeObject(files, Formatting.Indented));
    }

    /// <summary>The files recorded for <paramref name="commit"/>, or null when it was never listed online (or the record is damaged).</summary>
    public static IReadOnlyList<HubFile>? Read(string repoFolder, string commit)
    {
        string path = PathOf(repoFolder, commit);
        if (!File.Exists(path)) return null;
        List<HubFile>? files;
        try
        {
            files = JsonConvert.DeserializeObject<List<HubFile>>(File.ReadAllText(path));
        }
        catch (JsonException)
        {
            return null;
        }
        // Each path becomes a file under the cache, as when HubClient read it from the Hub.
        return files is not null && files.All(f => f is not null && HubPaths.RelativePathProblem(f.Path) is null) ? files : null;
    }

    private static string PathOf(string repoFolder, string commit) => Path.Combine(repoFolder, "listings", commit + ".json");
}
