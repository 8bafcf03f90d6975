using System.Text.RegularExpressions;
using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>
/// The names of the original (CompVis/Stability "LDM") single-file layout that AUTOMATIC1111 and ComfyUI load, for
/// each diffusers weight key. The rules are those of diffusers' <c>loaders/single_file_utils.py</c> and
/// <c>scripts/convert_diffusers_to_original_stable_diffusion.py</c>, written out for any number of levels and
/// resnets per level (the script hard-codes SD's four levels and two resnets; see <see cref="UnetKey"/>).
/// </summary>
public static partial class LdmNames
{
    /// <summary>Prefix of the UNet's tensors.</summary>
    public const string UnetPrefix = "model.diffusion_model.";

    /// <summary>Prefix of the VAE's tensors.</summary>
    public const string VaePrefix = "first_stage_model.";

    /// <summary>Prefix of an SD 1.x text encoder (transformers' CLIP names follow it).</summary>
    public const string ClipPrefix = "cond_stage_model.transformer.";

    /// <summary>Prefix of an SD 2.x OpenCLIP text encoder.</summary>
    public const string OpenClipPrefix = "cond_stage_model.model.";

    /// <summary>Prefix of SDXL's first text encoder, CLIP ViT-L (transformers' names follow it, <c>text_model.</c> included).</summary>
    public const string SdxlClipPrefix = "conditioner.embedders.0.transformer.";

    /// <summary>Prefix of SDXL's second text encoder, OpenCLIP ViT-bigG (OpenCLIP's names follow it).</summary>
    public const string SdxlOpenClipPrefix = "conditioner.embedders.1.model.";

    private static readonly (string Diffusers, string Ldm)[] ResnetParts =
    [
        ("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
        ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"),
    ];

    /// <summary>
    /// The LDM name (without <see cref="UnetPrefix"/>) of a diffusers UNet key. Level i of n with L resnets is
    /// <c>input_blocks.{(L+1)·i + j + 1}</c> (resnet j at <c>.0</c>, its attention at <c>.1</c>), its downsampler
    /// <c>input_blocks.{(L+1)·(i+1)}.0.op</c>; up level i's resnet j is <c>output_blocks.{(L+1)·i + j}.0</c>, its
    /// attention <c>.1</c>, and the upsampler follows the last resnet's layers: <c>.1</c> without attention, <c>.2</c>
    /// with. SDXL's numbering (SGM's <c>UNetModel</c>, which kohya's <c>sdxl_original_unet.py</c> mirrors) follows the same
    /// rules, its added embedding at <c>label_emb.0.0</c>/<c>label_emb.0.2</c>. For SD 1.x/2.x this is exactly the script's output; the script writes up level 0's upsampler at
    /// <c>.1</c> and leaves its attentions unconverted even when that level has attention (it assumes SD's layout,
    /// where it never does), which no LDM loader reads, so this follows the LDM model's own numbering instead.
    /// </summary>
    /// <param name="key">The diffusers key, such as <c>down_blocks.1.attentions.0.proj_in.weight</c>.</param>
    /// <param name="layersPerBlock">The config's <c>layers_per_block</c>.</param>
    /// <param name="upBlockHasAttention">Whether up block i is a cross-attention block.</param>
    /// <exception cref="WeightsException">A key outside the SD 1.x/2.x and SDXL UNets.</exception>
    public static string UnetKey(string key, int layersPerBlock, Func<int, bool> upBlockHasAttention)
    {
        int stride = layersPerBlock + 1;
        switch (key)
        {
            case var _ when key.StartsWith("conv_in.", StringComparison.Ordinal): return "input_blocks.0.0." + key["conv_in.".Length..];
            case var _ when key.StartsWith("time_embedding.linear_1.", StringComparison.Ordinal): return "time_embed.0." + key["time_embedding.linear_1.".Length..];
            case var _ when key.StartsWith("time_embedding.linear_2.", StringComparison.Ordinal): return "time_embed.2." + key["time_embedding.linear_2.".Length..];
            // SDXL's text_time embedding is SGM's label_emb, a Sequential inside a Sequential (Linear, SiLU, Linear).
            case var _ when key.StartsWith("add_embedding.linear_1.", StringComparison.Ordinal): return "label_emb.0.0." + key["add_embedding.linear_1.".Length..];
            case var _ when key.StartsWith("add_embedding.linear_2.", StringComparison.Ordinal): return "label_emb.0.2." + key["add_embedding.linear_2.".Length..];
            case var _ when key.StartsWith("conv_norm_out.", StringComparison.Ordinal): return "out.0." + key["conv_norm_out.".Length..];
            case var _ when key.StartsWith("conv_out.", StringComparison.Ordinal): return "out.2." + key["conv_out.".Length..];
        }
        var m = DownBlock().Match(key);
        if (m.Success)
        {
            int i = int.Parse(m.Groups[1].Value), j = int.Parse(m.Groups[3].Value);
            string rest = m.Groups[4].Value;
            return m.Groups[2].Value switch
            {
                "resnets" => $"input_blocks.{stride * i + j + 1}.0.{Resnet(rest, key)}",
                "attentions" => $"input_blocks.{stride * i + j + 1}.1.{rest}",
                _ => rest.StartsWith("conv.", StringComparison.Ordinal) ? $"input_blocks.{stride * (i + 1)}.0.op.{rest["conv.".Length..]}" : throw Unknown(key),
            };
        }
        m = MidBlock().Match(key);
        if (m.Success)
        {
            int j = int.Parse(m.Groups[2].Value);
            string rest = m.Groups[3].Value;
            return m.Groups[1].Value == "resnets" ? $"middle_block.{2 * j}.{Resnet(rest, key)}" : j == 0 ? $"middle_block.1.{rest}" : throw Unknown(key);
        }
        m = UpBlock().Match(key);
        if (m.Success)
        {
            int i = int.Parse(m.Groups[1].Value), j = int.Parse(m.Groups[3].Value);
            string rest = m.Groups[4].Value;
            return m.Groups[2].Value switch
            {
                "resnets" => $"output_blocks.{stride * i + j}.0.{Resnet(rest, key)}",
                "attentions" => $"output_blocks.{stride * i + j}.1.{rest}",
                _ => $"output_blocks.{stride * i + layersPerBlock}.{(upBlockHasAttention(i) ? 2 : 1)}.{rest}",
            };
        }
        throw Unknown(key);
    }

    private static string Resnet(string rest, string key)
    {
        foreach (var (diffusers, ldm) in ResnetParts)
            if (rest.StartsWith(diffusers + ".", StringComparison.Ordinal))
                return ldm + rest[diffusers.Length..];
        throw Unknown(key);
    }

    /// <summary>
    /// The LDM name (without <see cref="VaePrefix"/>) of a diffusers VAE key: <c>encoder.down.{i}.block.{j}</c>,
    /// <c>decoder.up.{n-1-i}</c> (the LDM decoder counts up levels from the highest resolution's partner),
    /// <c>mid.block_1/attn_1/block_2</c>, <c>nin_shortcut</c>, <c>norm_out</c>; the mid attention's
    /// <c>to_q/to_k/to_v/to_out.0</c> are <c>q/k/v/proj_out</c>, stored there as 1×1 convolutions.
    /// </summary>
    /// <param name="key">The diffusers key.</param>
    /// <param name="levels">Number of encoder (and decoder) levels.</param>
    public static string VaeKey(string key, int levels)
    {
        var m = VaeLevel().Match(key);
        if (m.Success)
        {
            string coder = m.Groups[1].Value;
            int i = int.Parse(m.Groups[3].Value);
            int ldmLevel = coder == "encoder" ? i : levels - 1 - i;
            string kind = coder == "encoder" ? "down" : "up";
            string rest = m.Groups[4].Value;
            var r = VaeInner().Match(rest);
            if (!r.Success) throw Unknown(key);
            return r.Groups[1].Value switch
            {
                "resnets" => $"{coder}.{kind}.{ldmLevel}.block.{r.Groups[2].Value}.{VaeResnet(r.Groups[3].Value)}",
                "downsamplers" => $"{coder}.{kind}.{ldmLevel}.downsample.{r.Groups[3].Value}",
                _ => $"{coder}.{kind}.{ldmLevel}.upsample.{r.Groups[3].Value}",
            };
        }
        m = VaeMid().Match(key);
        if (m.Success)
        {
            string coder = m.Groups[1].Value, rest = m.Groups[4].Value;
            int j = int.Parse(m.Groups[3].Value);
            if (m.Groups[2].Value == "resnets") return $"{coder}.mid.block_{j + 1}.{VaeResnet(rest)}";
            string part = rest.Split('.')[0] switch
            {
                "group_norm" => "norm", "to_q" => "q", "to_k" => "k", "to_v" => "v",
                "to_out" when rest.StartsWith("to_out.0.", StringComparison.Ordinal) => "proj_out",
                _ => throw Unknown(key),
            };
            string suffix = rest[(rest.StartsWith("to_out.0.", StringComparison.Ordinal) ? "to_out.0.".Length : rest.IndexOf('.') + 1)..];
            return $"{coder}.mid.attn_1.{part}.{suffix}";
        }
        if (key.StartsWith("encoder.conv_norm_out.", StringComparison.Ordinal)) return "encoder.norm_out." + key["encoder.conv_norm_out.".Length..];
        if (key.StartsWith("decoder.conv_norm_out.", StringComparison.Ordinal)) return "decoder.norm_out." + key["decoder.conv_norm_out.".Length..];
        return key; // conv_in, conv_out, quant_conv, post_quant_conv keep their names
    }

    /// <summary>Whether a diffusers VAE key is a mid-block attention projection, a Linear [C, C] in diffusers and a 1×1 convolution [C, C, 1, 1] in LDM.</summary>
    public static bool IsVaeAttentionProjection(string key) =>
        VaeMid().Match(key) is { Success: true } m && m.Groups[2].Value == "attentions"
        && key.EndsWith(".weight", StringComparison.Ordinal) && !key.Contains(".group_norm.", StringComparison.Ordinal);

    private static string VaeResnet(string rest) =>
        rest.StartsWith("conv_shortcut.", StringComparison.Ordinal) ? "nin_shortcut." + rest["conv_shortcut.".Length..] : rest;

    private static WeightsException Unknown(string key) =>
        new($"'{key}': not a weight of the Stable Diffusion 1.x/2.x or SDXL architecture, so it has no name in the original (LDM/SGM) layout");

    [GeneratedRegex(@"^down_blocks\.(\d+)\.(resnets|attentions|downsamplers)\.(\d+)\.(.+)$")]
    private static partial Regex DownBlock();

    [GeneratedRegex(@"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")]
    private static partial Regex MidBlock();

    [GeneratedRegex(@"^up_blocks\.(\d+)\.(resnets|attentions|upsamplers)\.(\d+)\.(.+)$")]
    private static partial Regex UpBlock();

    [GeneratedRegex(@"^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(.+)$")]
    private static partial Regex VaeLevel();

    [GeneratedRegex(@"^(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$")]
    private static partial Regex VaeInner();

    [GeneratedRegex(@"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")]
    private static partial Regex VaeMid();
}
