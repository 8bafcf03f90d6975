using SdPipeline.Pipeline;
using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>Models the tool makes itself, offline and deterministically.</summary>
public static class BuiltinModels
{
    /// <summary>Bumped whenever a builtin's architecture, initialisation or training changes.</summary>
    public const int Version = 1;

    /// <summary>The identity of a builtin in fingerprints: its name, generator version and seed.</summary>
    public static string Identity(string name, int seed) => $"{name} v{Version} seed {seed}";

    /// <summary>Writes the builtin model into <c>model/</c> of the stage's folder.</summary>
    public static ResolvedModel Create(string name, int seed, StageWorkspace workspace)
    {
        string folder = Path.Combine(workspace.Directory, "model");
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); // an interrupted run's leftovers
        BuiltinTiny.Write(folder, seed);
        var hashes = ModelFiles.Select(DiffusersFolder.Open(folder), null)
            .ToDictionary(f => f, f => FileHashCache.HashFile(Path.Combine(folder, f)), StringComparer.Ordinal);
        // Relative: the stage's folder is renamed into place after this returns.
        return new ResolvedModel { Kind = "builtin", Source = $"builtin:{name}", Folder = "model", ContentHashes = hashes };
    }
}
