using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Weights;

/// <summary>
/// Loads weights into a module by name, strictly: every module key must be in the files with the same
/// shape, and every file key must belong to the module (or be a known legacy key). All problems are
/// reported together in one error, as diffusers and nanoGPT do, so a user fixes them in one pass.
/// </summary>
public static class StateDictLoader
{
    /// <summary>Copies the tensors of <paramref name="files"/> into <paramref name="module"/>'s parameters and buffers.</summary>
    /// <exception cref="WeightsException">Missing, unexpected or wrongly shaped keys, listed by name.</exception>
    public static void Load(nn.Module module, IReadOnlyList<SafeTensorsFile> files, KeyCompatibility? compatibility = null)
    {
        compatibility ??= KeyCompatibility.Strict;
        var state = module.state_dict();
        var sources = new Dictionary<string, (SafeTensorsFile File, string Key)>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        foreach (var file in files)
            foreach (var entry in file.Entries)
            {
                if (compatibility.KeyOf(entry.Name, file) is not { } key) continue;
                if (state.ContainsKey(key)) sources[key] = (file, entry.Name);
                else if (!compatibility.IgnoredKeys.Contains(entry.Name)) unexpected.Add(entry.Name);
            }

        var missing = state.Keys.Where(k => !sources.ContainsKey(k)).ToList();
        var wrongShape = new List<string>();
        foreach (var (key, source) in sources)
        {
            var entry = source.File.Entry(source.Key);
            long[] expected = state[key].shape, found = entry.Shape;
            if (!expected.SequenceEqual(found))
                wrongShape.Add($"{source.Key}: file [{string.Join(", ", found)}], model [{string.Join(", ", expected)}]");
            // Float widths convert exactly enough (F64, F16, BF16 into float32); integers into a float parameter are another tensor's bytes.
            else if (torch.is_floating_point(state[key]) && !IsFloating(entry.DType))
                wrongShape.Add($"{source.Key}: file {entry.DType}, model {state[key].dtype} (an integer or boolean tensor where weights belong: the file is not this model's)");
        }
        if (missing.Count + unexpected.Count + wrongShape.Count > 0)
            throw new WeightsException(Describe(files, missing, unexpected, wrongShape));

        using var _ = torch.no_grad();
        foreach (var (key, source) in sources)
            source.File.CopyInto(source.Key, state[key]);
    }

    /// <summary>Opens <paramref name="paths"/>, loads them into <paramref name="module"/>, and closes them.</summary>
    public static void Load(nn.Module module, IReadOnlyList<string> paths, KeyCompatibility? compatibility = null)
    {
        var files = new List<SafeTensorsFile>();
        try
        {
            foreach (string path in paths) files.Add(SafeTensorsFile.Open(path));
            Load(module, files, compatibility);
        }
        finally
        {
            foreach (var file in files) file.Dispose();
        }
    }

    private static bool IsFloating(ScalarType type) =>
        type is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    private static string Describe(IReadOnlyList<SafeTensorsFile> files, List<string> missing, List<string> unexpected, List<string> wrongShape)
    {
        const int shown = 20;
        var message = new StringBuilder($"{string.Join(", ", files.Select(f => f.Path))}: the weights do not match the model ({missing.Count} missing, {unexpected.Count} unexpected, {wrongShape.Count} wrongly shaped or typed)");
        void List(string title, List<string> keys)
        {
            if (keys.Count == 0) return;
            message.Append($"\n  {title}: {string.Join(", ", keys.Take(shown))}{(keys.Count > shown ? $", … ({keys.Count - shown} more)" : "")}");
        }
        List("missing keys", missing);
        List("unexpected keys", unexpected);
        List("wrong shapes or types", wrongShape);
        message.Append("\n  Is the config.json beside the weights the one they were trained with?");
        return message.ToString();
    }
}
