using YamlDotNet.RepresentationModel;

using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>
/// What a single-file checkpoint's sidecar LDM config (<c>model.yaml</c> beside <c>model.safetensors</c>, as
/// AUTOMATIC1111 and ComfyUI look for it; the <c>v1-inference.yaml</c> / <c>v2-inference-v.yaml</c> layout) says
/// that the tensors cannot: the noise parameterization, the attention heads and the latent scale.
/// </summary>
public sealed record LdmYaml
{
    /// <summary><c>model.params.parameterization</c>: <c>v</c> for v-prediction, <c>eps</c> (or absent) for ε.</summary>
    public string? Parameterization { get; init; }

    /// <summary><c>unet_config.params.num_heads</c> (SD 1.x: 8 heads at every level).</summary>
    public int? NumHeads { get; init; }

    /// <summary><c>unet_config.params.num_head_channels</c> (SD 2.x: 64 channels per head).</summary>
    public int? NumHeadChannels { get; init; }

    /// <summary><c>model.params.scale_factor</c>, the VAE's scaling factor.</summary>
    public double? ScaleFactor { get; init; }

    /// <summary>The sidecar of <paramref name="checkpoint"/> (same name, <c>.yaml</c>), or null when there is none.</summary>
    /// <exception cref="WeightsException">The file exists but is not YAML.</exception>
    public static LdmYaml? Beside(string checkpoint)
    {
        string path = Path.ChangeExtension(checkpoint, ".yaml");
        return File.Exists(path) ? Parse(File.ReadAllText(path), path) : null;
    }

    /// <summary>Reads the keys this tool uses from an LDM config.</summary>
    public static LdmYaml Parse(string text, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new WeightsException($"{source}: not valid YAML ({e.Message})");
        }
        if (stream.Documents.Count == 0) return new LdmYaml();
        var root = stream.Documents[0].RootNode;
        var model = Child(root, "model", "params");
        var unet = Child(model, "unet_config", "params");
        return new LdmYaml
        {
            Parameterization = Scalar(model, "parameterization"),
            NumHeads = Int(unet, "num_heads", source),
            NumHeadChannels = Int(unet, "num_head_channels", source),
            ScaleFactor = Scalar(model, "scale_factor") is { } scale
                ? double.TryParse(scale, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double s) ? s : throw new WeightsException($"{source}: scale_factor '{scale}' is not a number")
                : null,
        };
    }

    private static YamlNode? Child(YamlNode? node, params string[] path)
    {
        foreach (string key in path)
        {
            if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var next)) return null;
            node = next;
        }
        return node;
    }

    private static string? Scalar(YamlNode? node, string key) => Child(node, key) is YamlScalarNode scalar ? scalar.Value : null;

    private static int? Int(YamlNode? node, string key, string source)
    {
        string? text = Scalar(node, key);
        if (text is null || text == "-1") return null; // -1 is LDM's "not set"
        return int.TryParse(text, out int value) ? value : throw new WeightsException($"{source}: {key} '{text}' is not an integer");
    }
}
