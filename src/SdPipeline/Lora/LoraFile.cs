using System.Globalization;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Lora;

/// <summary>
/// LoRA files in the two layouts other tools load. Key patterns, from the sources that read and write them:
/// <list type="bullet">
/// <item>diffusers/PEFT — <c>StableDiffusionLoraLoaderMixin.save_lora_weights</c> packs PEFT's
/// <c>get_peft_model_state_dict</c> under the component prefix: <c>unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight</c>,
/// <c>…lora_B.weight</c>, <c>text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight</c>; its loader also accepts
/// the <c>.lora.down/.lora.up</c> spelling that <c>convert_state_dict_to_diffusers</c> writes (state_dict_utils.py's
/// <c>UNET_TO_DIFFUSERS</c> maps it back). Alpha is not a tensor: diffusers ≥ 0.34 stores the LoraConfig as JSON in the
/// safetensors header entry <c>lora_adapter_metadata</c> (<c>{"unet.r": 4, "unet.lora_alpha": 4, …}</c>); without it alpha = r.</item>
/// <item>kohya (sd-scripts networks/lora.py: <c>lora_name = prefix + "." + name + "." + child_name</c> with "." → "_",
/// prefixes <c>lora_unet</c> and <c>lora_te</c>): <c>lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight</c>,
/// <c>.lora_up.weight</c> and a scalar <c>.alpha</c>. diffusers reads it with <c>_convert_non_diffusers_lora_to_diffusers</c>
/// (lora_conversion_utils.py), ComfyUI and AUTOMATIC1111 map the same names to their modules.</item>
/// </list>
/// </summary>
public static class LoraFile
{
    /// <summary>diffusers' file name (<c>LORA_WEIGHT_NAME_SAFE</c>): <c>load_lora_weights(folder)</c> finds it.</summary>
    public const string DiffusersFileName = "pytorch_lora_weights.safetensors";

    /// <summary>The kohya-layout file written beside it.</summary>
    public const string KohyaFileName = "lora_kohya.safetensors";

    /// <summary>diffusers' <c>LORA_ADAPTER_METADATA_KEY</c>.</summary>
    public const string AdapterMetadataKey = "lora_adapter_metadata";

    // kohya's prefixes: SD's one text encoder is lora_te; SDXL's two are lora_te1 (text_encoder) and lora_te2 (text_encoder_2),
    // as sd-scripts' sdxl_train_network.py names them (LORA_PREFIX_TEXT_ENCODER1/2 in networks/lora.py).
    private static readonly Dictionary<string, string> KohyaPrefixes = new(StringComparer.Ordinal)
    {
        [LoraNetwork.Unet] = "lora_unet_",
        [LoraNetwork.TextEncoder] = "lora_te_",
        [LoraNetwork.TextEncoder2] = "lora_te2_",
    };

    private const string KohyaSdxlTextEncoder1Prefix = "lora_te1_";

    /// <summary>Writes <paramref name="modules"/> in <paramref name="layout"/> (float32) to <paramref name="path"/>.</summary>
    /// <param name="path">The file to write.</param>
    /// <param name="modules">The adapters.</param>
    /// <param name="layout">diffusers/PEFT or kohya names.</param>
    /// <param name="sdxl">
    /// The adapters are an SDXL model's: kohya names the first text encoder <c>lora_te1_</c>. Implied when a module is on
    /// <c>text_encoder_2</c>.
    /// </param>
    /// <param name="originalUnetNames">
    /// kohya's layout only: each UNet layer path's module path in the original block numbering (<see cref="OriginalUnetNumbering.Of"/>),
    /// as kohya's SDXL trainer names its adapters; null keeps diffusers' numbering (what kohya's SD 1.x/2.x trainer writes).
    /// </param>
    /// <param name="sd2">An SD 2.x model's adapters (kohya layout: <c>ss_v2</c> in the metadata).</param>
    public static void Write(string path, IReadOnlyList<LoraModuleWeights> modules, LoraLayout layout, bool sdxl = false,
        IReadOnlyDictionary<string, string>? originalUnetNames = null, bool sd2 = false)
    {
        ArgumentNullException.ThrowIfNull(modules);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var scope = torch.NewDisposeScope();
        Dictionary<string, string> metadata;
        if (layout == LoraLayout.Diffusers)
        {
            foreach (var m in modules)
            {
                tensors[$"{m.Component}.{m.Path}.lora_A.weight"] = Float(m.Down);
                tensors[$"{m.Component}.{m.Path}.lora_B.weight"] = Float(m.Up);
            }
            metadata = new Dictionary<string, string> { [AdapterMetadataKey] = AdapterMetadata(modules).ToString(Formatting.Indented) };
        }
        else
        {
            foreach (var m in modules)
            {
                string name = m.Component == LoraNetwork.Unet && originalUnetNames is not null
                    ? KohyaName(LoraNetwork.Unet, originalUnetNames.TryGetValue(m.Path, out string? original) ? original
                        : throw new ArgumentException($"unet.{m.Path} has no original-numbering name", nameof(originalUnetNames)))
                    : KohyaName(m.Component, m.Path, sdxl || modules.Any(x => x.Component == LoraNetwork.TextEncoder2));
                tensors[$"{name}.lora_down.weight"] = Float(m.Down);
                tensors[$"{name}.lora_up.weight"] = Float(m.Up);
                tensors[$"{name}.alpha"] = torch.tensor((float)m.Alpha);
            }
            // sd-scripts' training metadata that UIs show (ss_network_dim/alpha are strings there too).
            metadata = new Dictionary<string, string>
            {
                ["ss_network_module"] = "networks.lora",
                ["ss_network_dim"] = modules.Count > 0 ? modules[0].Rank.ToString(CultureInfo.InvariantCulture) : "0",
                ["ss_network_alpha"] = modules.Count > 0 ? modules[0].Alpha.ToString("R", CultureInfo.InvariantCulture) : "0",
            };
            // AUTOMATIC1111's Lora tab hides a LoRA whose metadata names another family than the checkpoint loaded (SD 1 when it
            // says nothing of SDXL or SD 2), as sd-scripts writes them.
            if (sdxl || modules.Any(x => x.Component == LoraNetwork.TextEncoder2)) metadata["ss_base_model_version"] = "sdxl_base_v1-0";
            else if (sd2) metadata["ss_v2"] = "True";
        }
        SafeTensorsWriter.Write(path, tensors, metadata);
    }

    /// <summary>
    /// The kohya module name of a layer: <c>lora_unet_</c>, <c>lora_te_</c> (SDXL: <c>lora_te1_</c>) or <c>lora_te2_</c>, and the
    /// path with dots as underscores, in diffusers' block numbering (<c>lora_unet_down_blocks_1_attentions_0_…</c>), the form
    /// diffusers' <c>_convert_unet_lora_key</c> maps back; pass a UNet layer's original path (<see cref="OriginalUnetNumbering"/>)
    /// for the name kohya's SDXL trainer gives it (<c>lora_unet_input_blocks_4_1_…</c>). The reader takes both.
    /// </summary>
    public static string KohyaName(string component, string path, bool sdxl = false)
    {
        if (sdxl && component == LoraNetwork.TextEncoder) return KohyaSdxlTextEncoder1Prefix + path.Replace('.', '_');
        return (KohyaPrefixes.TryGetValue(component, out string? prefix) ? prefix : throw new ArgumentException($"no kohya prefix for component '{component}'", nameof(component)))
            + path.Replace('.', '_');
    }

    /// <summary>
    /// Reads a LoRA file of either layout. Kohya names lose the dots of the module path, so they are matched against the
    /// layers the model has (<paramref name="layers"/>: component and path of every linear and convolution layer), as
    /// ComfyUI and AUTOMATIC1111 do; a UNet layer is found under diffusers' block numbering and under the original one
    /// (<see cref="OriginalUnetNumbering"/>). The tensors returned are new CPU tensors the caller owns.
    /// </summary>
    /// <exception cref="WeightsException">Not a LoRA file, or keys that name no layer of the model.</exception>
    public static (LoraLayout Layout, IReadOnlyList<LoraModuleWeights> Modules) Read(string path, IEnumerable<(string Component, string Path)> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        using var file = Open(path);
        return Detect(file) == LoraLayout.Kohya ? (LoraLayout.Kohya, ReadKohya(file, layers)) : (LoraLayout.Diffusers, ReadDiffusers(file));
    }

    /// <summary>The layout of the LoRA file at <paramref name="path"/>.</summary>
    /// <exception cref="WeightsException">Not a LoRA file.</exception>
    public static LoraLayout Detect(string path)
    {
        using var file = Open(path);
        return Detect(file);
    }

    private static SafeTensorsFile Open(string path) =>
        File.Exists(path) ? SafeTensorsFile.Open(path) : throw new WeightsException($"LoRA file '{path}' not found");

    private static LoraLayout Detect(SafeTensorsFile file)
    {
        var names = file.Entries.Select(e => e.Name).ToList();
        if (names.Any(n => n.StartsWith("lora_unet_", StringComparison.Ordinal) || n.StartsWith("lora_te_", StringComparison.Ordinal)
            || n.StartsWith(KohyaSdxlTextEncoder1Prefix, StringComparison.Ordinal) || n.StartsWith("lora_te2_", StringComparison.Ordinal)))
            return LoraLayout.Kohya;
        if (names.Any(n => n.Contains(".lora_A.", StringComparison.Ordinal) || n.Contains(".lora.down.", StringComparison.Ordinal) || n.Contains(".lora_linear_layer.down.", StringComparison.Ordinal)))
            return LoraLayout.Diffusers;
        throw new WeightsException($"{file.Path}: not a LoRA file in the diffusers/PEFT layout (unet.….lora_A.weight) or kohya's (lora_unet_….lora_down.weight); " +
            $"first keys: {string.Join(", ", names.Take(3))}");
    }

    private static List<LoraModuleWeights> ReadKohya(SafeTensorsFile file, IEnumerable<(string Component, string Path)> layers)
    {
        var byName = new Dictionary<string, (string Component, string Path)>(StringComparer.Ordinal);
        var all = layers.ToList();
        foreach (var layer in all)
            if (KohyaPrefixes.ContainsKey(layer.Component))
            {
                byName[KohyaName(layer.Component, layer.Path)] = layer;
                if (layer.Component == LoraNetwork.TextEncoder) byName[KohyaName(layer.Component, layer.Path, sdxl: true)] = layer;
            }
        // The UNet's layers also under the original block numbering (kohya's SDXL trainer): lora_unet_input_blocks_4_1_….
        var unetPaths = all.Where(l => l.Component == LoraNetwork.Unet).Select(l => l.Path).ToList();
        if (unetPaths.Count > 0)
            foreach (var (path, original) in OriginalUnetNumbering.Of(unetPaths))
                if (!byName.TryAdd(KohyaName(LoraNetwork.Unet, original), (LoraNetwork.Unet, path)))
                    throw new InvalidOperationException($"the original-numbering name of unet.{path} ({original}) is also the kohya name of another layer");
        var modules = new List<LoraModuleWeights>();
        var unknown = new List<string>();
        var named = new Dictionary<(string Component, string Path), string>();
        foreach (var entry in file.Entries.Where(e => e.Name.EndsWith(".lora_down.weight", StringComparison.Ordinal)))
        {
            string name = entry.Name[..^".lora_down.weight".Length];
            if (!byName.TryGetValue(name, out var layer))
            {
                unknown.Add(name);
                continue;
            }
            if (!named.TryAdd(layer, name))
                throw new WeightsException($"{file.Path}: '{named[layer]}' and '{name}' adapt the same layer ({layer.Component}.{layer.Path}), once in diffusers' " +
                    "block numbering and once in the original one; keep one of them");
            var (down, up) = ReadPair(file, entry.Name, $"{name}.lora_up.weight");
            // kohya: "if alpha == 0 or None, alpha is rank (no scaling)".
            double alpha = file.Contains($"{name}.alpha") ? Scalar(file, $"{name}.alpha") : 0;
            modules.Add(new LoraModuleWeights(layer.Component, layer.Path, down, up, alpha > 0 ? alpha : down.shape[0]));
        }
        Unknown(file.Path, unknown);
        var unused = file.Entries.Select(e => e.Name)
            .Where(n => !n.EndsWith(".lora_down.weight", StringComparison.Ordinal) && !n.EndsWith(".lora_up.weight", StringComparison.Ordinal) && !n.EndsWith(".alpha", StringComparison.Ordinal))
            .ToList();
        if (unused.Count > 0)
            throw new WeightsException($"{file.Path}: keys of a kind this LoRA loader does not apply (LyCORIS/DoRA?): {string.Join(", ", unused.Take(5))}");
        return modules;
    }

    private static List<LoraModuleWeights> ReadDiffusers(SafeTensorsFile file)
    {
        JObject? config = file.Metadata.TryGetValue(AdapterMetadataKey, out string? json) ? AdapterConfig(file.Path, json) : null;
        // What PEFT applies beyond B·A·alpha/r would be dropped without a word and give other images: refused, as in kohya files.
        var other = file.Entries.Select(e => e.Name).Where(n => n.Contains("lora_magnitude_vector", StringComparison.Ordinal) || n.EndsWith(".lora_B.bias", StringComparison.Ordinal)).ToList();
        if (other.Count > 0)
            throw new WeightsException($"{file.Path}: keys of a kind this LoRA loader does not apply (DoRA magnitudes, LoRA biases): {string.Join(", ", other.Take(5))}");
        if (config?.Properties().FirstOrDefault(p => p.Name.EndsWith(".use_rslora", StringComparison.Ordinal) && p.Value.Type == JTokenType.Boolean && p.Value.Value<bool>()) is { } rslora)
            throw new WeightsException($"{file.Path}: {rslora.Name} is true (scaling by alpha/√r), which this LoRA loader does not apply");
        var modules = new List<LoraModuleWeights>();
        foreach (var entry in file.Entries)
        {
            string? stem = Stem(entry.Name, ".lora_A.weight") ?? Stem(entry.Name, ".lora.down.weight") ?? Stem(entry.Name, ".lora_linear_layer.down.weight");
            if (stem is null) continue;
            string upName = entry.Name.Replace(".lora_A.", ".lora_B.", StringComparison.Ordinal).Replace(".lora.down.", ".lora.up.", StringComparison.Ordinal)
                .Replace(".lora_linear_layer.down.", ".lora_linear_layer.up.", StringComparison.Ordinal);
            int dot = stem.IndexOf('.', StringComparison.Ordinal);
            if (dot < 0) throw new WeightsException($"{file.Path}: key '{entry.Name}' has no component prefix (unet. or text_encoder.)");
            string component = stem[..dot], layerPath = stem[(dot + 1)..].Replace(".processor.", ".", StringComparison.Ordinal);
            var (down, up) = ReadPair(file, entry.Name, upName);
            long rank = down.shape[0];
            if (HeaderRank(file.Path, config, component, layerPath) is { } headerRank && headerRank != rank)
            {
                down.Dispose();
                up.Dispose();
                // diffusers builds the adapter from the header and PEFT refuses the tensors' shapes; alpha / r would be another scale.
                throw new WeightsException($"{file.Path}: {stem} has rank {rank} but the header's {component}.r / rank_pattern says {headerRank}; " +
                    "the file is inconsistent (diffusers' load_lora_weights refuses it too)");
            }
            modules.Add(new LoraModuleWeights(component, layerPath, down, up, DiffusersAlpha(file, config, component, layerPath, stem, rank)));
        }
        return modules;
    }

    // The rank the header's LoraConfig gives a module: its rank_pattern entry, else r; null without a header, or when
    // rank_pattern holds only patterns PEFT matches as regular expressions (not judged here).
    private static double? HeaderRank(string file, JObject? config, string component, string path)
    {
        if (Number(file, config, $"{component}.r") is not { } r) return null;
        if (config![$"{component}.rank_pattern"] is JObject { Count: > 0 } pattern)
            return Number(file, pattern, path, $"{component}.rank_pattern");
        return r;
    }

    // diffusers: the LoraConfig from the header (alpha_pattern by module, else lora_alpha), else a network_alphas-style
    // "PATH.alpha" tensor (older conversions), else alpha = r (load_lora_adapter's default).
    private static double DiffusersAlpha(SafeTensorsFile file, JObject? config, string component, string path, string stem, long rank)
    {
        if (config?[$"{component}.alpha_pattern"] is JObject pattern && Number(file.Path, pattern, path, $"{component}.alpha_pattern") is { } specific) return specific;
        if (Number(file.Path, config, $"{component}.lora_alpha") is { } alpha) return alpha;
        if (file.Contains($"{stem}.alpha")) return Scalar(file, $"{stem}.alpha");
        return rank;
    }

    private static JObject AdapterMetadata(IReadOnlyList<LoraModuleWeights> modules)
    {
        var metadata = new JObject();
        foreach (var group in modules.GroupBy(m => m.Component))
        {
            var first = group.First();
            string c = group.Key;
            metadata[$"{c}.r"] = first.Rank;
            metadata[$"{c}.lora_alpha"] = first.Alpha;
            metadata[$"{c}.init_lora_weights"] = "gaussian";
            metadata[$"{c}.lora_dropout"] = 0.0;
            // PEFT matches target_modules as suffixes of module names: the layer names (to_q, to_out.0, conv1, q_proj, …).
            metadata[$"{c}.target_modules"] = new JArray(group.Select(m => TargetName(m.Path)).Distinct().Order(StringComparer.Ordinal));
            // Always present, empty when uniform, as PEFT's LoraConfig.to_dict() writes them: diffusers ≥ 0.34 reads
            // config["rank_pattern"] from the header before anything else (_maybe_raise_error_for_ambiguous_keys).
            metadata[$"{c}.rank_pattern"] = group.Any(m => m.Rank != first.Rank) ? new JObject(group.Select(m => new JProperty(m.Path, m.Rank))) : new JObject();
            metadata[$"{c}.alpha_pattern"] = group.Any(m => m.Alpha != first.Alpha) ? new JObject(group.Select(m => new JProperty(m.Path, m.Alpha))) : new JObject();
        }
        // Sorted keys, as diffusers' json.dumps(..., sort_keys=True): the same adapters give the same header.
        return new JObject(metadata.Properties().OrderBy(p => p.Name, StringComparer.Ordinal));
    }

    private static string TargetName(string path)
    {
        string[] parts = path.Split('.');
        return parts.Length >= 2 && int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out _) ? $"{parts[^2]}.{parts[^1]}" : parts[^1];
    }

    /// <summary>
    /// The down and up weights of one adapter, refused by key when their shapes are no adapter's: a stranger's file may hold
    /// anything under these names, and a rank of 0 or a down and up of different ranks would otherwise end in an index
    /// error, a division by zero, or a converted file no other tool loads.
    /// </summary>
    private static (Tensor Down, Tensor Up) ReadPair(SafeTensorsFile file, string downName, string upName)
    {
        long[] down = file.Entry(downName).Shape, up = file.Entry(upName).Shape;
        bool linear = down.Length == 2 && up.Length == 2;
        bool convolution = down.Length == 4 && up.Length == 4 && up[2] == 1 && up[3] == 1;
        if (!(linear || convolution) || down[0] < 1 || up[1] != down[0])
            throw new WeightsException($"{file.Path}: '{downName}' has shape [{string.Join(", ", down)}] and '{upName}' [{string.Join(", ", up)}], " +
                "which are not a LoRA's (down [r, in] and up [out, r] for a linear layer, down [r, in, k, k] and up [out, r, 1, 1] for a convolution, r ≥ 1)");
        return (file.Read(downName), file.Read(upName));
    }

    /// <summary>diffusers' LoraConfig from the header, refused by name when it is not a JSON object (json.loads fails in diffusers too).</summary>
    private static JObject AdapterConfig(string file, string json)
    {
        try
        {
            return JObject.Parse(json);
        }
        catch (JsonReaderException e)
        {
            throw new WeightsException($"{file}: its metadata entry '{AdapterMetadataKey}' is not a JSON object: {e.Message}");
        }
    }

    /// <summary>A number of the LoraConfig (r, lora_alpha, a pattern's entry), or null when absent; any other value is refused by name.</summary>
    private static double? Number(string file, JObject? config, string key, string? within = null) => config?[key] switch
    {
        null or { Type: JTokenType.Null } => null,
        { Type: JTokenType.Integer or JTokenType.Float } number => number.Value<double>(),
        var other => throw new WeightsException($"{file}: '{AdapterMetadataKey}' gives {(within is null ? "" : within + " ")}'{key}' the value {other.ToString(Formatting.None)}, not a number"),
    };

    private static string? Stem(string name, string suffix) => name.EndsWith(suffix, StringComparison.Ordinal) ? name[..^suffix.Length] : null;

    private static double Scalar(SafeTensorsFile file, string name)
    {
        if (file.Entry(name).Shape.Aggregate(1L, (a, b) => a * b) != 1)
            throw new WeightsException($"{file.Path}: '{name}' has shape [{string.Join(", ", file.Entry(name).Shape)}]; an alpha is one number");
        using var tensor = file.Read(name);
        return tensor.to(ScalarType.Float64).item<double>();
    }

    private static Tensor Float(Tensor tensor) => tensor.detach().to(ScalarType.Float32).cpu().contiguous();

    private static void Unknown(string path, List<string> unknown)
    {
        if (unknown.Count > 0)
            throw new WeightsException($"{path}: {unknown.Count} LoRA module(s) name no layer of this model, e.g. {string.Join(", ", unknown.Take(3))} " +
                "(a LoRA for another architecture? SD 1.x/2.x and SDXL LoRAs are read in diffusers' block naming, lora_unet_down_blocks_…, and in the original " +
                "CompVis/SGM one, lora_unet_input_blocks_…, with lora_te_/lora_te1_/lora_te2_ for the text encoders)");
    }
}
