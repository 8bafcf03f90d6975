using System.Globalization;
using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using SdPipeline.Models.Clip;

using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>
/// The diffusers configs of a single-file checkpoint, read from its tensors as diffusers'
/// <c>create_unet_diffusers_config_from_ldm</c> / <c>create_vae_diffusers_config_from_ldm</c> read them from the LDM
/// yaml: levels, channels and resnets per level from the shapes, attention where <c>proj_in</c> exists, Linear
/// projections (SD 2.x) from <c>proj_in</c>'s rank, the text width from <c>attn2.to_k</c>. What no tensor shows comes
/// from the sidecar <see cref="LdmYaml"/>, else from the family's published config: SD 1.x has 8 heads per level,
/// SD 2.x 64 channels per head; the VAE scales latents by 0.18215; CLIP heads are 64 channels wide.
/// </summary>
public static partial class SingleFileArchitecture
{
    /// <summary>The family, from the text encoder's names.</summary>
    /// <exception cref="WeightsException">No text encoder, UNet or VAE of a known layout: names what is missing.</exception>
    public static SingleFileFamily Family(SafeTensorsFile file)
    {
        if (!file.Contains(LdmNames.UnetPrefix + "input_blocks.0.0.weight"))
            throw new WeightsException($"{file.Path}: no '{LdmNames.UnetPrefix}input_blocks.0.0.weight'; not an original-layout Stable Diffusion 1.x/2.x or SDXL checkpoint " +
                "(LoRA and UNet-only files are not single-file checkpoints)");
        if (!file.Contains(LdmNames.VaePrefix + "encoder.conv_in.weight"))
            throw new WeightsException($"{file.Path}: no VAE ('{LdmNames.VaePrefix}encoder.conv_in.weight'); this tool needs the full checkpoint (UNet, VAE and text encoder)");
        if (file.Contains(LdmNames.SdxlOpenClipPrefix + "token_embedding.weight")) return SingleFileFamily.StableDiffusionXL;
        if (file.Contains(LdmNames.OpenClipPrefix + "token_embedding.weight")) return SingleFileFamily.StableDiffusion2;
        if (file.Contains(LdmNames.ClipPrefix + "text_model.embeddings.token_embedding.weight")
            || file.Contains(LdmNames.ClipPrefix + "embeddings.token_embedding.weight")) return SingleFileFamily.StableDiffusion1;
        throw new WeightsException($"{file.Path}: no text encoder ('{LdmNames.ClipPrefix}text_model.*' for SD 1.x, '{LdmNames.OpenClipPrefix}*' for SD 2.x, " +
            $"'{LdmNames.SdxlOpenClipPrefix}*' for SDXL)");
    }

    /// <summary>The UNet's diffusers config.</summary>
    public static JObject Unet(SafeTensorsFile file, SingleFileFamily family, LdmYaml? yaml)
    {
        var input = BlockIndices(file, "input_blocks");
        int downsamplers = input.Count(i => file.Contains($"{LdmNames.UnetPrefix}input_blocks.{i}.0.op.weight"));
        int levels = downsamplers + 1;
        if (input.Count % levels != 0)
            throw new WeightsException($"{file.Path}: {input.Count} input blocks do not divide into {levels} levels; not an SD 1.x/2.x UNet");
        int layersPerBlock = input.Count / levels - 1;
        int stride = layersPerBlock + 1;
        var channels = new List<int>();
        var down = new List<string>();
        int crossAttentionDim = 0, transformerLayers = 1;
        bool linearProjection = false;
        for (int i = 0; i < levels; i++)
        {
            int first = stride * i + 1;
            channels.Add((int)Shape(file, $"{LdmNames.UnetPrefix}input_blocks.{first}.0.out_layers.3.weight", 4)[0]);
            string attention = $"{LdmNames.UnetPrefix}input_blocks.{first}.1.";
            if (file.Contains(attention + "proj_in.weight"))
            {
                down.Add("CrossAttnDownBlock2D");
                linearProjection = file.Entry(attention + "proj_in.weight").Shape.Length == 2;
                crossAttentionDim = (int)Shape(file, attention + "transformer_blocks.0.attn2.to_k.weight", 2)[1];
                transformerLayers = 1 + file.Entries.Select(e => e.Name).Where(n => n.StartsWith(attention + "transformer_blocks.", StringComparison.Ordinal))
                    .Select(n => Number(file, n, n[(attention + "transformer_blocks.").Length..].Split('.')[0])).Max();
            }
            else
            {
                down.Add("DownBlock2D");
            }
        }
        if (crossAttentionDim == 0)
            throw new WeightsException($"{file.Path}: the UNet has no cross-attention; not a text-to-image SD 1.x/2.x UNet");
        var up = down.AsEnumerable().Reverse().Select(t => t == "CrossAttnDownBlock2D" ? "CrossAttnUpBlock2D" : "UpBlock2D").ToList();

        JToken heads;
        if (yaml?.NumHeads is int numHeads) heads = numHeads;
        else if (yaml?.NumHeadChannels is int headChannels || family == SingleFileFamily.StableDiffusion2)
        {
            int perHead = yaml?.NumHeadChannels ?? 64;
            heads = new JArray(channels.Select(c => c / perHead));
        }
        else heads = 8;

        var conv = Shape(file, LdmNames.UnetPrefix + "input_blocks.0.0.weight", 4);
        return new JObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["sample_size"] = family == SingleFileFamily.StableDiffusion2 && yaml?.Parameterization == "v" ? 96 : 64,
            ["in_channels"] = (int)conv[1],
            ["out_channels"] = (int)Shape(file, LdmNames.UnetPrefix + "out.2.weight", 4)[0],
            ["down_block_types"] = new JArray(down),
            ["up_block_types"] = new JArray(up),
            ["mid_block_type"] = "UNetMidBlock2DCrossAttn",
            ["block_out_channels"] = new JArray(channels),
            ["layers_per_block"] = layersPerBlock,
            ["cross_attention_dim"] = crossAttentionDim,
            ["attention_head_dim"] = heads,
            ["use_linear_projection"] = linearProjection,
            ["transformer_layers_per_block"] = transformerLayers,
            ["conv_in_kernel"] = (int)conv[2],
            ["conv_out_kernel"] = (int)Shape(file, LdmNames.UnetPrefix + "out.2.weight", 4)[2],
        };
    }

    /// <summary>The VAE's diffusers config.</summary>
    public static JObject Vae(SafeTensorsFile file, LdmYaml? yaml)
    {
        string p = LdmNames.VaePrefix;
        int levels = 1 + file.Entries.Select(e => (e.Name, Match: EncoderLevel().Match(e.Name))).Where(x => x.Match.Success)
            .Select(x => Number(file, x.Name, x.Match.Groups[1].Value)).DefaultIfEmpty(-1).Max();
        int layers = 1 + file.Entries.Select(e => (e.Name, Match: EncoderBlock().Match(e.Name))).Where(x => x.Match.Success)
            .Select(x => Number(file, x.Name, x.Match.Groups[1].Value)).DefaultIfEmpty(-1).Max();
        if (levels < 1 || layers < 1) throw new WeightsException($"{file.Path}: no '{p}encoder.down.N.block.M' tensors; not an SD VAE");
        var channels = Enumerable.Range(0, levels).Select(i => (int)Shape(file, $"{p}encoder.down.{i}.block.0.conv2.weight", 4)[0]).ToList();
        int latent = (int)Shape(file, p + "encoder.conv_out.weight", 4)[0] / 2;
        return new JObject
        {
            ["_class_name"] = "AutoencoderKL",
            ["in_channels"] = (int)Shape(file, p + "encoder.conv_in.weight", 4)[1],
            ["out_channels"] = (int)Shape(file, p + "decoder.conv_out.weight", 4)[0],
            ["down_block_types"] = new JArray(Enumerable.Repeat("DownEncoderBlock2D", levels)),
            ["up_block_types"] = new JArray(Enumerable.Repeat("UpDecoderBlock2D", levels)),
            ["block_out_channels"] = new JArray(channels),
            ["layers_per_block"] = layers,
            ["latent_channels"] = latent,
            ["norm_num_groups"] = 32,
            ["sample_size"] = 512,
            ["scaling_factor"] = yaml?.ScaleFactor ?? 0.18215,
            ["use_quant_conv"] = file.Contains(p + "quant_conv.weight"),
            ["use_post_quant_conv"] = file.Contains(p + "post_quant_conv.weight"),
        };
    }

    /// <summary>
    /// The text encoder's config: widths and depth from the shapes; heads of 64 channels (CLIP ViT-L/14's 12 and
    /// OpenCLIP ViT-H/14's 16); SD 2.x uses OpenCLIP's penultimate layer, so diffusers' config has one layer fewer
    /// than the file and the last one is not loaded.
    /// </summary>
    /// <exception cref="WeightsException">A width that is not a multiple of 64, whose heads no tensor shows.</exception>
    public static ClipTextConfig TextEncoder(SafeTensorsFile file, SingleFileFamily family)
    {
        bool v2 = family == SingleFileFamily.StableDiffusion2;
        string prefix = v2 ? LdmNames.OpenClipPrefix : TextPrefix(file);
        var token = Shape(file, prefix + (v2 ? "token_embedding.weight" : "embeddings.token_embedding.weight"), 2);
        var positions = Shape(file, prefix + (v2 ? "positional_embedding" : "embeddings.position_embedding.weight"), 2);
        var layer = v2 ? ResBlock() : ClipLayer();
        int layers = 1 + file.Entries.Select(e => (e.Name, Match: e.Name.StartsWith(prefix, StringComparison.Ordinal) ? layer.Match(e.Name[prefix.Length..]) : Match.Empty))
            .Where(x => x.Match.Success).Select(x => Number(file, x.Name, x.Match.Groups[1].Value)).DefaultIfEmpty(-1).Max();
        int hidden = (int)token[1];
        if (hidden % 64 != 0)
            throw new WeightsException($"{file.Path}: the text encoder is {hidden} wide, not a multiple of CLIP's 64-channel heads, so its head count cannot be read from the file; " +
                "set model.single_file_config to a diffusers folder whose text_encoder/config.json describes it");
        var fc1 = Shape(file, prefix + (v2 ? "transformer.resblocks.0.mlp.c_fc.weight" : "encoder.layers.0.mlp.fc1.weight"), 2);
        return new ClipTextConfig
        {
            VocabSize = (int)token[0],
            HiddenSize = hidden,
            IntermediateSize = (int)fc1[0],
            NumHiddenLayers = v2 ? layers - 1 : layers,
            NumAttentionHeads = hidden / 64,
            MaxPositionEmbeddings = (int)positions[0],
            HiddenAct = v2 ? "gelu" : "quick_gelu",
        };
    }

    /// <summary>
    /// The UNet's prediction type: the sidecar yaml's <c>parameterization</c>, else a <c>v_pred</c> key (the marker
    /// ComfyUI and kohya's scripts write), else <paramref name="fallback"/> (ε unless a config folder says otherwise).
    /// </summary>
    public static (string PredictionType, string Reason) PredictionType(SafeTensorsFile file, LdmYaml? yaml, string? fallback)
    {
        if (yaml?.Parameterization is { } parameterization)
            return (parameterization == "v" ? "v_prediction" : "epsilon", $"the sidecar .yaml's parameterization '{parameterization}'");
        if (file.Contains("v_pred")) return ("v_prediction", "the checkpoint's 'v_pred' key");
        return fallback is null
            ? ("epsilon", "no sidecar .yaml or v_pred key (SD 2.x 768-px v-models need a .yaml with parameterization: \"v\" beside the file)")
            : (fallback, "the config folder's scheduler");
    }

    /// <summary>The prefix of an SD 1.x text encoder's transformers names (older files lack <c>text_model.</c>).</summary>
    public static string TextPrefix(SafeTensorsFile file) =>
        file.Contains(LdmNames.ClipPrefix + "text_model.embeddings.token_embedding.weight") ? LdmNames.ClipPrefix + "text_model." : LdmNames.ClipPrefix;

    // The configs are read from these shapes before the strict load compares any: a hostile or damaged file's shape of
    // another rank, or with a size of 0 or past int, must stop here by name, not as an index error or a model of that size.
    private static long[] Shape(SafeTensorsFile file, string key, int rank)
    {
        long[] shape = file.Contains(key) ? file.Entry(key).Shape : throw new WeightsException($"{file.Path}: no tensor '{key}', which an SD 1.x/2.x checkpoint has");
        if (shape.Length != rank || shape.Any(d => d is < 1 or > int.MaxValue))
            throw new WeightsException($"{file.Path}: tensor '{key}' has shape [{string.Join(", ", shape)}]; an SD 1.x/2.x checkpoint's has {rank} sizes of at least 1");
        return shape;
    }

    // A block or layer number from a tensor's name. Every block has tensors, so a number past the file's tensor count
    // numbers no block: refused rather than building a model of that many blocks (or failing to parse it past int).
    private static int Number(SafeTensorsFile file, string key, string digits) =>
        int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int number) && number < file.Entries.Count
            ? number
            : throw new WeightsException($"{file.Path}: tensor '{key}' numbers its block '{digits}', which no block of a {file.Entries.Count}-tensor checkpoint has");

    private static List<int> BlockIndices(SafeTensorsFile file, string kind)
    {
        string prefix = LdmNames.UnetPrefix + kind + ".";
        return file.Entries.Where(e => e.Name.StartsWith(prefix, StringComparison.Ordinal))
            .Select(e => Number(file, e.Name, e.Name[prefix.Length..].Split('.')[0])).Distinct().Order().ToList();
    }

    [GeneratedRegex(@"^first_stage_model\.encoder\.down\.(\d+)\.")]
    private static partial Regex EncoderLevel();

    [GeneratedRegex(@"^first_stage_model\.encoder\.down\.0\.block\.(\d+)\.")]
    private static partial Regex EncoderBlock();

    [GeneratedRegex(@"^transformer\.resblocks\.(\d+)\.")]
    private static partial Regex ResBlock();

    [GeneratedRegex(@"^encoder\.layers\.(\d+)\.")]
    private static partial Regex ClipLayer();
}
