using SdPipeline.Hub;
using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>The files of a local diffusers folder that a pipeline reads, chosen as for a Hub download.</summary>
public static class ModelFiles
{
    /// <summary>Relative paths of the files <see cref="PipelineFiles"/> would select in <paramref name="folder"/>.</summary>
    /// <exception cref="WeightsException">A component without safetensors weights, naming the folder.</exception>
    public static IReadOnlyList<string> Select(DiffusersFolder folder, string? variant)
    {
        var present = Directory.EnumerateFiles(folder.Root, "*", SearchOption.AllDirectories)
            .Select(path => Path.GetRelativePath(folder.Root, path).Replace('\\', '/'))
            .Select(relative => new HubFile(relative, 0, null, ""))
            .ToList();
        return PipelineFiles.Select(present, variant, $"in {folder.Root}").Select(f => f.Path).Order(StringComparer.Ordinal).ToList();
    }
}
