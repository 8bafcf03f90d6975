using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Weights;

/// <summary>
/// A model in diffusers layout: <c>model_index.json</c> and one folder per component (<c>unet/</c>,
/// <c>vae/</c>, <c>text_encoder/</c>, <c>tokenizer/</c>, <c>scheduler/</c>), each with its
/// <c>config.json</c> and safetensors weights — optionally a precision variant
/// (<c>diffusion_pytorch_model.fp16.safetensors</c>) or shards listed in a <c>.index.json</c>.
/// </summary>
public sealed class DiffusersFolder
{
    /// <summary>The folder.</summary>
    public string Root { get; }

    /// <summary>The precision variant its weights are read in (<c>model.variant</c>, such as <c>fp16</c>), or null for the plain files.</summary>
    public string? Variant { get; }

    private DiffusersFolder(string root, string? variant) => (Root, Variant) = (root, variant);

    /// <summary>Opens a diffusers folder, refusing pickle checkpoints with a conversion hint.</summary>
    /// <param name="path">The folder.</param>
    /// <param name="variant">
    /// The precision variant every component's weights are read in, where the folder has it (a Hub download of a variant
    /// has only those files); null for the plain files.
    /// </param>
    /// <exception cref="WeightsException">Not a folder, no model_index.json, or a single-file pickle checkpoint.</exception>
    public static DiffusersFolder Open(string path, string? variant = null)
    {
        if (File.Exists(path))
        {
            if (PickleRefusal.IsPickle(path))
                throw new WeightsException(PickleRefusal.Message(path));
            throw new WeightsException($"{path}: not a diffusers folder; model.base reads single-file checkpoints only as .safetensors (original SD 1.x/2.x layout), " +
                "and diffusers folders (model_index.json, unet/, vae/, …) otherwise.");
        }
        if (!Directory.Exists(path)) throw new WeightsException($"{path}: model folder not found");
        if (!File.Exists(Path.Combine(path, "model_index.json")))
            throw new WeightsException($"{path}: no model_index.json; expected a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)");
        return new DiffusersFolder(path, variant);
    }

    /// <summary>
    /// Whether <paramref name="path"/> names a file of precision variant <paramref name="variant"/>: diffusers puts the variant
    /// before the last extension (<c>diffusion_pytorch_model.fp16.safetensors</c>, <c>model.safetensors.index.fp16.json</c>).
    /// </summary>
    public static bool IsVariantFile(string path, string variant) =>
        Path.GetFileName(path).Contains($".{variant}.", StringComparison.Ordinal);

    /// <summary>The plain name of a <paramref name="variant"/> file (<c>diffusion_pytorch_model.fp16.safetensors</c> → <c>diffusion_pytorch_model.safetensors</c>).</summary>
    public static string PlainName(string fileName, string variant)
    {
        string marker = $".{variant}.";
        int at = fileName.IndexOf(marker, StringComparison.Ordinal);
        return at < 0 ? fileName : string.Concat(fileName.AsSpan(0, at), ".", fileName.AsSpan(at + marker.Length));
    }

    /// <summary><c>model_index.json</c> as JSON.</summary>
    public JObject ModelIndex() => ReadJson(Path.Combine(Root, "model_index.json"));

    /// <summary>The folder of a component (<c>unet</c>, <c>vae</c>, …).</summary>
    public string Component(string name)
    {
        string path = Path.Combine(Root, name);
        return Directory.Exists(path) ? path : throw new WeightsException($"{Root}: no '{name}/' component folder");
    }

    /// <summary>A component's <c>config.json</c> (or another JSON file in it).</summary>
    public JObject ComponentJson(string component, string file = "config.json") => ReadJson(Path.Combine(Component(component), file));

    /// <summary>
    /// The safetensors files holding a component's weights: <c>BASE[.VARIANT].safetensors</c>, or the shards
    /// its <c>.index.json</c> lists. With a variant, falls back to the plain file when the variant is absent.
    /// </summary>
    /// <param name="component">Component folder name.</param>
    /// <param name="variant">Precision variant such as <c>fp16</c>; null for the folder's own (<see cref="Variant"/>).</param>
    public IReadOnlyList<string> WeightFiles(string component, string? variant = null)
    {
        variant ??= Variant;
        string folder = Component(component);
        string[] bases = ["diffusion_pytorch_model", "model"];
        foreach (string? v in variant is null ? [null] : new[] { variant, null })
        {
            foreach (string name in bases)
            {
                string stem = v is null ? name : $"{name}.{v}";
                string single = Path.Combine(folder, $"{stem}.safetensors");
                if (File.Exists(single)) return [single];
                string index = Path.Combine(folder, $"{stem}.safetensors.index.json");
                if (File.Exists(index))
                    return ShardFiles(index, folder);
            }
        }
        var pickles = Directory.EnumerateFiles(folder).Where(PickleRefusal.IsPickle).ToList();
        if (pickles.Count > 0) throw new WeightsException(PickleRefusal.Message(pickles[0]));
        throw new WeightsException($"{folder}: no safetensors weights (expected diffusion_pytorch_model.safetensors or model.safetensors{(variant is null ? "" : $", or the {variant} variant")})");
    }

    /// <summary>
    /// The shards a <c>.index.json</c> names. A shard is a file beside the index (as diffusers and transformers
    /// write them); a name with a folder in it, such as <c>../../secret.safetensors</c>, is refused rather than opened.
    /// </summary>
    private static List<string> ShardFiles(string index, string folder)
    {
        if (ReadJson(index)["weight_map"] is not JObject map)
            throw new WeightsException($"{index}: no 'weight_map' object (tensor name → shard file)");
        var shards = new List<string>();
        foreach (var entry in map.Properties())
        {
            string? file = entry.Value.Type == JTokenType.String ? entry.Value.Value<string>() : null;
            if (file is null || file.Length == 0 || file is "." or ".." || file.IndexOfAny(['/', '\\', ':', '\0']) >= 0)
                throw new WeightsException($"{index}: weight_map entry '{entry.Name}' names '{entry.Value}', which is not a file beside the index " +
                    "(shards are plain file names; a path there could read outside the model folder)");
            if (!file.EndsWith(".safetensors", StringComparison.Ordinal))
                throw new WeightsException($"{index}: weight_map entry '{entry.Name}' names '{file}', which is not a .safetensors shard");
            if (!shards.Contains(file)) shards.Add(file);
        }
        return shards.Select(f => Path.Combine(folder, f)).ToList();
    }

    private static JObject ReadJson(string path)
    {
        if (!File.Exists(path)) throw new WeightsException($"{path}: file not found");
        try
        {
            return JObject.Parse(File.ReadAllText(path));
        }
        catch (JsonReaderException e)
        {
            throw new WeightsException($"{path}: invalid JSON at line {e.LineNumber}: {e.Message}");
        }
    }
}
