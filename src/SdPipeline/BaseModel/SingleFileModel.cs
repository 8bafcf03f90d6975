using SdPipeline.Pipeline;
using SdPipeline.Weights;
using SdPipeline.SingleFileCheckpoints;

namespace SdPipeline.BaseModel;

/// <summary>
/// <c>model.base</c> as a single-file checkpoint: converted once into a diffusers folder inside the model artifact
/// (downstream stages read diffusers folders only). Its identity is content: the file, its sidecar <c>.yaml</c> and
/// the files of <c>model.single_file_config</c> that the conversion reads — renaming or moving them changes nothing.
/// </summary>
public static class SingleFileModel
{
    /// <summary>Content hashes of everything the conversion reads, without converting.</summary>
    public static Dictionary<string, string> Identity(string checkpoint, string configFolder, FileHashCache hashes)
    {
        var identity = new Dictionary<string, string>(StringComparer.Ordinal) { ["single-file"] = hashes.Hash(checkpoint) };
        string yaml = Path.ChangeExtension(checkpoint, ".yaml");
        if (File.Exists(yaml)) identity["single-file:yaml"] = hashes.Hash(yaml);
        if (configFolder.Length > 0)
        {
            string root = Path.GetFullPath(configFolder);
            foreach (string file in ConfigFiles(root))
                identity[$"single-file-config:{Path.GetRelativePath(root, file).Replace('\\', '/')}"] = hashes.Hash(file);
        }
        identity["single-file:converter"] = "v1";
        return identity;
    }

    /// <summary>Converts the checkpoint into <c>model/</c> of the stage's folder.</summary>
    public static ResolvedModel Create(string checkpoint, string configFolder, StageWorkspace workspace)
    {
        string folder = Path.Combine(workspace.Directory, "model");
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true); // an interrupted run's leftovers
        SingleFileImport import;
        try
        {
            import = SingleFileImporter.Import(checkpoint, folder, configFolder.Length > 0 ? Path.GetFullPath(configFolder) : null);
        }
        catch (WeightsException e)
        {
            throw new StageInputException($"model.base: {e.Message}");
        }
        string family = import.Family switch
        {
            SingleFileFamily.StableDiffusion1 => "Stable Diffusion 1.x",
            SingleFileFamily.StableDiffusion2 => "Stable Diffusion 2.x",
            _ => "Stable Diffusion XL",
        };
        workspace.Log($"model: {Path.GetFileName(checkpoint)} is {family}; " +
            string.Join("; ", import.ConfigSources.Select(p => $"{p.Key}: {p.Value}")));
        foreach (var (group, count) in import.Ignored)
            workspace.Log($"model: ignored {count} tensors no component uses: {group}");
        var hashes = ModelFiles.Select(DiffusersFolder.Open(folder), null)
            .ToDictionary(f => f, f => FileHashCache.HashFile(Path.Combine(folder, f)), StringComparer.Ordinal);
        // Relative: the stage's folder is renamed into place after this returns.
        return new ResolvedModel { Kind = "single-file", Source = checkpoint, Folder = "model", ContentHashes = hashes };
    }

    private static IEnumerable<string> ConfigFiles(string folder)
    {
        if (!Directory.Exists(folder))
            throw new StageInputException($"model.single_file_config: {folder} is not a folder (give a diffusers folder with tokenizer/ and component configs)");
        // An SDXL import also reads the second encoder's config and tokenizer, and the folder's model_index.json (an SD
        // import does not, so an SD folder's identity is what it was).
        string index = Path.Combine(folder, "model_index.json");
        if (Directory.Exists(Path.Combine(folder, "text_encoder_2")) && File.Exists(index)) yield return index;
        foreach (string component in new[] { "unet", "vae", "text_encoder", "scheduler", "tokenizer", "text_encoder_2", "tokenizer_2" })
        {
            string dir = Path.Combine(folder, component);
            if (!Directory.Exists(dir)) continue;
            foreach (string file in Directory.EnumerateFiles(dir).Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".txt", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
                yield return file;
        }
    }
}
