using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Files;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>What an import found: the family, where each config came from, and what the file held that was not used.</summary>
/// <param name="Family">SD 1.x, 2.x or SDXL.</param>
/// <param name="PredictionType">The scheduler's prediction type, and why.</param>
/// <param name="Ignored">Keys of the file no component reads, grouped (schedule buffers, EMA copies, …) with counts.</param>
/// <param name="ConfigSources">Component → "inferred from the tensors" or the config file used.</param>
public sealed record SingleFileImport(SingleFileFamily Family, string PredictionType, IReadOnlyDictionary<string, int> Ignored, IReadOnlyDictionary<string, string> ConfigSources);

/// <summary>
/// Turns an original-layout single-file checkpoint into a diffusers folder, as diffusers'
/// <c>StableDiffusionPipeline.from_single_file</c> does: every weight the diffusers components have is taken from the
/// file by its LDM name (<see cref="SingleFileNames"/>), with the shape checked; the VAE's 1×1-convolution attention
/// weights become Linear weights and SD 2.x's fused q/k/v are split. A weight the model needs and the file lacks is
/// an error naming it; keys no component reads (the noise schedule's <c>betas</c>/<c>alphas_cumprod</c>…,
/// <c>model_ema.*</c>, <c>position_ids</c>, OpenCLIP's unused last layer and projection) are counted and reported.
/// Configs come from the config folder where it has them (diffusers' <c>config=</c> argument), else from
/// the tensors (<see cref="SingleFileArchitecture"/>); the tokenizer, which no checkpoint carries, from that folder.
/// An SDXL checkpoint (SGM's layout, see <see cref="SingleFileExporter"/>) takes every architecture config from the config
/// folder, which must be an SDXL diffusers folder: inferring SDXL's architecture from the tensors is not implemented. Its
/// OpenCLIP <c>text_projection</c> is transposed back into transformers' Linear weight; a file that holds it as
/// <c>text_projection.weight</c> instead (what diffusers' conversion script writes) is read as it is.
/// </summary>
public static class SingleFileImporter
{
    /// <summary>Writes the diffusers folder <paramref name="output"/> from <paramref name="checkpoint"/>.</summary>
    /// <param name="checkpoint">The <c>.safetensors</c> file.</param>
    /// <param name="output">The folder to write (created).</param>
    /// <param name="configFolder">A diffusers folder of the same architecture supplying configs and tokenizer, or null.</param>
    /// <exception cref="WeightsException">Not an SD 1.x/2.x or SDXL checkpoint, a missing or misshapen weight, no tokenizer, an SDXL file without SDXL configs.</exception>
    public static SingleFileImport Import(string checkpoint, string output, string? configFolder)
    {
        using var file = SafeTensorsFile.Open(checkpoint);
        var family = SingleFileArchitecture.Family(file);
        var yaml = LdmYaml.Beside(checkpoint);
        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        var used = new HashSet<string>(StringComparer.Ordinal);
        Directory.CreateDirectory(output);

        JObject? Given(string component, string name)
        {
            if (configFolder is null) return null;
            string path = Path.Combine(configFolder, component, name);
            if (!File.Exists(path)) return null;
            sources[component] = path;
            try
            {
                return JObject.Parse(File.ReadAllText(path));
            }
            catch (JsonReaderException e)
            {
                throw new WeightsException($"{path}: invalid JSON at line {e.LineNumber}: {e.Message}");
            }
        }
        bool sdxl = family == SingleFileFamily.StableDiffusionXL;
        if (sdxl) RequireSdxlConfigs(checkpoint, configFolder);
        string tokenizer = configFolder is null ? "" : Path.Combine(configFolder, "tokenizer");
        if (!Directory.Exists(tokenizer))
            throw new WeightsException($"{checkpoint}: a single-file checkpoint carries no tokenizer; set model.single_file_config to a diffusers folder of the same family " +
                $"({(family == SingleFileFamily.StableDiffusion1 ? "SD 1.x: CLIP ViT-L/14's vocab.json and merges.txt" : "SD 2.x: OpenCLIP's")} in its tokenizer/), whose configs are also used where it has them" +
                (configFolder is null ? "" : $" ({tokenizer} does not exist)"));

        // UNet
        var unetJson = Given("unet", "config.json") ?? SingleFileArchitecture.Unet(file, family, yaml);
        sources.TryAdd("unet", "inferred from the tensors");
        var unetConfig = UNet2DConditionConfig.Parse(unetJson, $"{checkpoint} (unet)");
        using (var meta = new UNet2DConditionModel(unetConfig, new Device(DeviceType.META)))
            WriteComponent(file, Shapes(meta), key => SingleFileNames.Unet(key, unetConfig), Path.Combine(output, "unet", "diffusion_pytorch_model.safetensors"), used, UnetFallback);
        DiffusersJson(Path.Combine(output, "unet", "config.json"), unetConfig.ToJson());

        // VAE
        var vaeJson = Given("vae", "config.json") ?? SingleFileArchitecture.Vae(file, yaml);
        sources.TryAdd("vae", "inferred from the tensors");
        var vaeConfig = AutoencoderKLConfig.Parse(vaeJson, $"{checkpoint} (vae)");
        using (var meta = new AutoencoderKL(vaeConfig, new Device(DeviceType.META)))
            WriteComponent(file, Shapes(meta), key => SingleFileNames.Vae(key, vaeConfig.BlockOutChannels.Count), Path.Combine(output, "vae", "diffusion_pytorch_model.safetensors"), used,
                (_, slot, f) => VaeFallback(slot, f, vaeConfig.BlockOutChannels.Count));
        DiffusersJson(Path.Combine(output, "vae", "config.json"), vaeConfig.ToJson());

        // Text encoder
        var textJson = Given("text_encoder", "config.json");
        var textConfig = textJson is null ? SingleFileArchitecture.TextEncoder(file, family) : ClipTextConfig.Parse(textJson.ToString(), sources["text_encoder"]);
        sources.TryAdd("text_encoder", "inferred from the tensors");
        string clipPrefix = SingleFileArchitecture.TextPrefix(file);
        var special = SpecialTokens(tokenizer);
        using (var meta = new ClipTextModel(textConfig, new Device(DeviceType.META)))
            WriteComponent(file, Shapes(meta), key => SingleFileNames.TextEncoder(key, family, family == SingleFileFamily.StableDiffusion1 ? clipPrefix : LdmNames.ClipPrefix), Path.Combine(output, "text_encoder", "model.safetensors"), used, null);
        AtomicFile.WriteAllText(Path.Combine(output, "text_encoder", "config.json"), textConfig.ToJson(special.Bos, special.Eos, special.Pad).ToString(Formatting.Indented) + "\n");

        // SDXL's second text encoder and tokenizer
        if (sdxl)
        {
            string text2Config = Path.Combine(configFolder!, "text_encoder_2", "config.json");
            sources["text_encoder_2"] = text2Config;
            using (var meta = ClipTextModelWithProjection.FromConfig(text2Config, device: new Device(DeviceType.META)))
                WriteComponent(file, Shapes(meta), SingleFileNames.TextEncoder2, Path.Combine(output, "text_encoder_2", "model.safetensors"), used, ProjectionFallback);
            File.Copy(text2Config, Path.Combine(output, "text_encoder_2", "config.json"), overwrite: true);
            CopyFolder(Path.Combine(configFolder!, "tokenizer_2"), Path.Combine(output, "tokenizer_2"));
        }

        // Tokenizer and scheduler
        CopyFolder(tokenizer, Path.Combine(output, "tokenizer"));
        var scheduler = Given("scheduler", "scheduler_config.json");
        var (prediction, why) = SingleFileArchitecture.PredictionType(file, yaml, scheduler?.Value<string>("prediction_type"));
        scheduler ??= sdxl ? DefaultSdxlScheduler() : DefaultScheduler();
        DiffusersConfigWriter.Set(scheduler, "prediction_type", prediction);
        Directory.CreateDirectory(Path.Combine(output, "scheduler"));
        AtomicFile.WriteAllText(Path.Combine(output, "scheduler", "scheduler_config.json"), scheduler.ToString(Formatting.Indented) + "\n");
        sources["prediction_type"] = $"{prediction}: {why}";
        var index = sdxl ? SdxlModelIndex(configFolder!) : ModelIndex();
        index["scheduler"] = new JArray("diffusers", scheduler.Value<string>("_class_name") ?? "PNDMScheduler");
        AtomicFile.WriteAllText(Path.Combine(output, "model_index.json"), index.ToString(Formatting.Indented) + "\n");

        var ignored = file.Entries.Select(e => e.Name).Where(n => !used.Contains(n)).GroupBy(Group).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        return new SingleFileImport(family, prediction, ignored, sources);
    }

    // diffusers' conversion script leaves the attentions of up level 0 under their diffusers names and numbers its
    // upsampler .1 (it assumes SD's layout, where that level has no attention); read such files too.
    private static string? UnetFallback(string key, SingleFileSlot slot, SafeTensorsFile file)
    {
        if (file.Contains(slot.Name)) return null;
        string unconverted = LdmNames.UnetPrefix + key;
        if (file.Contains(unconverted)) return unconverted;
        if (key.Contains(".upsamplers.", StringComparison.Ordinal) && slot.Name.Contains(".2.conv.", StringComparison.Ordinal))
        {
            string one = slot.Name.Replace(".2.conv.", ".1.conv.", StringComparison.Ordinal);
            if (file.Contains(one)) return one;
        }
        return null;
    }

    private static void RequireSdxlConfigs(string checkpoint, string? configFolder)
    {
        string[] needed = ["unet/config.json", "vae/config.json", "text_encoder/config.json", "text_encoder_2/config.json", "tokenizer/vocab.json", "tokenizer_2/vocab.json"];
        var missing = configFolder is null ? needed : needed.Where(f => !File.Exists(Path.Combine(configFolder, f))).ToArray();
        if (missing.Length > 0)
            throw new WeightsException($"{checkpoint} is an SDXL checkpoint, whose architecture this tool takes from model.single_file_config (inferring it from the tensors " +
                "is not implemented): set it to an SDXL diffusers folder, such as stabilityai/stable-diffusion-xl-base-1.0's files other than the weights; " +
                (configFolder is null ? "none is set" : $"{configFolder} lacks {string.Join(", ", missing)}"));
    }

    // diffusers' convert_diffusers_to_original_sdxl.py keeps transformers' text_projection.weight (a Linear weight, not
    // transposed) under the OpenCLIP prefix; read such files too.
    private static string? ProjectionFallback(string key, SingleFileSlot slot, SafeTensorsFile file) =>
        slot.Transposed && !file.Contains(slot.Name) && file.Contains(slot.Name + ".weight") ? slot.Name + ".weight" : null;

    // The same script numbers decoder levels up.{3-i}, SD's four-level count, whatever the VAE's depth.
    private static string? VaeFallback(SingleFileSlot slot, SafeTensorsFile file, int levels)
    {
        var match = System.Text.RegularExpressions.Regex.Match(slot.Name, @"^(first_stage_model\.decoder\.up\.)(\d+)(\..+)$");
        if (!match.Success || levels >= 4 || !file.Entries.Any(e => e.Name.StartsWith("first_stage_model.decoder.up.3.", StringComparison.Ordinal))) return null;
        string scripted = $"{match.Groups[1].Value}{int.Parse(match.Groups[2].Value) + 4 - levels}{match.Groups[3].Value}";
        return file.Contains(scripted) ? scripted : null;
    }

    private static void WriteComponent(SafeTensorsFile file, IReadOnlyDictionary<string, long[]> shapes, Func<string, SingleFileSlot> slotOf, string path,
        HashSet<string> used, Func<string, SingleFileSlot, SafeTensorsFile, string?>? fallback)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var missing = new List<string>();
        var wrong = new List<string>();
        try
        {
            foreach (var (key, shape) in shapes)
            {
                var slot = slotOf(key);
                string? name = fallback?.Invoke(key, slot, file) ?? (file.Contains(slot.Name) ? slot.Name : null);
                if (name is null)
                {
                    missing.Add($"{slot.Name} (diffusers '{key}')");
                    continue;
                }
                used.Add(name);
                var tensor = file.Read(name);
                if (slot.Transposed && name == slot.Name)
                {
                    var transposed = tensor.t().contiguous();
                    tensor.Dispose();
                    tensor = transposed;
                }
                if (slot.Chunk is int chunk)
                {
                    var third = tensor.chunk(3, 0)[chunk].contiguous();
                    tensor.Dispose();
                    tensor = third;
                }
                if (!tensor.shape.SequenceEqual(shape) && tensor.numel() == shape.Aggregate(1L, (a, b) => a * b) && tensor.dim() == 4 && shape.Length == 2)
                {
                    var flat = tensor.reshape(shape); // LDM's VAE attention: 1×1 convolutions [C, C, 1, 1] → Linear [C, C]
                    tensor.Dispose();
                    tensor = flat;
                }
                if (!tensor.shape.SequenceEqual(shape))
                {
                    wrong.Add($"{name}: file [{string.Join(", ", tensor.shape)}], model [{string.Join(", ", shape)}]");
                    tensor.Dispose();
                    continue;
                }
                tensors[key] = tensor;
            }
            if (missing.Count + wrong.Count > 0)
                throw new WeightsException($"{file.Path}: " + string.Join("; ",
                    new[] { missing.Count > 0 ? $"{missing.Count} weights missing: {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", …" : "")}" : null,
                            wrong.Count > 0 ? $"{wrong.Count} of another shape than the architecture says: {string.Join(", ", wrong.Take(10))}" : null }
                    .Where(s => s is not null)) +
                    " (a config folder of another architecture, or a checkpoint that is not SD 1.x/2.x or SDXL?)");
            SafeTensorsWriter.Write(path, tensors);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    private static Dictionary<string, long[]> Shapes(nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.shape, StringComparer.Ordinal);

    private static string Group(string key) => key switch
    {
        _ when key.StartsWith("model_ema.", StringComparison.Ordinal) => "model_ema.* (EMA copies or their counters)",
        _ when !key.Contains('.') => "schedule buffers and markers (betas, alphas_cumprod, …)",
        _ when key.EndsWith("position_ids", StringComparison.Ordinal) => "position_ids",
        _ when key.StartsWith(LdmNames.OpenClipPrefix, StringComparison.Ordinal) => "OpenCLIP parts SD 2.x does not use (last layer, projection, logit scale)",
        _ when key.StartsWith(LdmNames.SdxlOpenClipPrefix, StringComparison.Ordinal) => "OpenCLIP parts SDXL does not use (logit scale)",
        _ => key.Split('.')[0] + ".* (other)",
    };

    private static (int Bos, int Eos, int Pad) SpecialTokens(string tokenizer)
    {
        var vocab = JObject.Parse(File.ReadAllText(Path.Combine(tokenizer, "vocab.json")));
        int Id(string token) => vocab.Value<int?>(token) ?? throw new WeightsException($"{tokenizer}/vocab.json: no '{token}'");
        int eos = Id("<|endoftext|>");
        int pad = eos;
        string config = Path.Combine(tokenizer, "tokenizer_config.json");
        if (File.Exists(config) && JObject.Parse(File.ReadAllText(config))["pad_token"] is { } padToken)
        {
            string text = padToken.Type == JTokenType.Object ? padToken.Value<string>("content") ?? "" : padToken.ToString();
            if (vocab.Value<int?>(text) is int id) pad = id;
        }
        return (Id("<|startoftext|>"), eos, pad);
    }

    private static void DiffusersJson(string path, JObject json) => AtomicFile.WriteAllText(path, json.ToString(Formatting.Indented) + "\n");

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string source in Directory.EnumerateFiles(from))
            File.Copy(source, Path.Combine(to, Path.GetFileName(source)), overwrite: true);
    }

    /// <summary>SD 1.x/2.x's published scheduler (PNDM over the scaled-linear schedule of the LDM training).</summary>
    public static JObject DefaultScheduler() => new()
    {
        ["_class_name"] = "PNDMScheduler",
        ["beta_start"] = 0.00085,
        ["beta_end"] = 0.012,
        ["beta_schedule"] = "scaled_linear",
        ["num_train_timesteps"] = 1000,
        ["set_alpha_to_one"] = false,
        ["skip_prk_steps"] = true,
        ["steps_offset"] = 1,
        ["clip_sample"] = false,
        ["prediction_type"] = "epsilon",
    };

    /// <summary>SDXL base 1.0's published scheduler (EulerDiscrete, "leading" spacing), for a config folder without one.</summary>
    public static JObject DefaultSdxlScheduler() => new()
    {
        ["_class_name"] = "EulerDiscreteScheduler",
        ["beta_start"] = 0.00085,
        ["beta_end"] = 0.012,
        ["beta_schedule"] = "scaled_linear",
        ["num_train_timesteps"] = 1000,
        ["steps_offset"] = 1,
        ["timestep_spacing"] = "leading",
        ["interpolation_type"] = "linear",
        ["use_karras_sigmas"] = false,
        ["prediction_type"] = "epsilon",
    };

    // The config folder's own model_index.json when it has one (force_zeros_for_empty_prompt and all), else SDXL base's.
    private static JObject SdxlModelIndex(string configFolder)
    {
        string given = Path.Combine(configFolder, "model_index.json");
        if (File.Exists(given)) return JObject.Parse(File.ReadAllText(given));
        return new JObject
        {
            ["_class_name"] = "StableDiffusionXLPipeline",
            ["_diffusers_version"] = "0.40.0.dev0",
            ["force_zeros_for_empty_prompt"] = true,
            ["scheduler"] = new JArray("diffusers", "EulerDiscreteScheduler"),
            ["text_encoder"] = new JArray("transformers", "CLIPTextModel"),
            ["text_encoder_2"] = new JArray("transformers", "CLIPTextModelWithProjection"),
            ["tokenizer"] = new JArray("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = new JArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JArray("diffusers", "AutoencoderKL"),
        };
    }

    /// <summary>The <c>model_index.json</c> of an SD 1.x/2.x diffusers folder (PNDM scheduler, no safety checker).</summary>
    public static JObject ModelIndex() => new()
    {
        ["_class_name"] = "StableDiffusionPipeline",
        ["_diffusers_version"] = "0.40.0.dev0",
        ["requires_safety_checker"] = false,
        ["feature_extractor"] = new JArray(JValue.CreateNull(), JValue.CreateNull()),
        ["safety_checker"] = new JArray(JValue.CreateNull(), JValue.CreateNull()),
        ["scheduler"] = new JArray("diffusers", "PNDMScheduler"),
        ["text_encoder"] = new JArray("transformers", "CLIPTextModel"),
        ["tokenizer"] = new JArray("transformers", "CLIPTokenizer"),
        ["unet"] = new JArray("diffusers", "UNet2DConditionModel"),
        ["vae"] = new JArray("diffusers", "AutoencoderKL"),
    };
}
