using SdPipeline.Models.Unet;

using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>
/// Where each diffusers weight of a component lives in a single file: the full LDM name, and for SD 2.x's fused
/// OpenCLIP attention the third of <c>in_proj_weight</c>/<c>in_proj_bias</c> it is.
/// </summary>
/// <param name="Name">The full key in the single file.</param>
/// <param name="Chunk">For a fused q/k/v tensor, which third (0 = q, 1 = k, 2 = v); else null.</param>
/// <param name="Transposed">
/// The file holds the transpose: OpenCLIP's <c>text_projection</c> is a [hidden, projection] matrix applied as
/// <c>x @ P</c>, transformers' a Linear weight [projection, hidden].
/// </param>
public sealed record SingleFileSlot(string Name, int? Chunk = null, bool Transposed = false);

/// <summary>The single-file name of every diffusers key, per component.</summary>
public static class SingleFileNames
{
    /// <summary>The slot of a UNet key.</summary>
    public static SingleFileSlot Unet(string key, UNet2DConditionConfig config) =>
        new(LdmNames.UnetPrefix + LdmNames.UnetKey(key, config.LayersPerBlock, i => config.UpBlockTypes[i] == "CrossAttnUpBlock2D"));

    /// <summary>The slot of a VAE key.</summary>
    public static SingleFileSlot Vae(string key, int levels) => new(LdmNames.VaePrefix + LdmNames.VaeKey(key, levels));

    /// <summary>The slot of a text-encoder key (transformers' CLIP names) for the family's layout.</summary>
    /// <param name="key">Such as <c>text_model.encoder.layers.0.self_attn.q_proj.weight</c>.</param>
    /// <param name="family">SD 1.x and SDXL keep the names under a prefix; SD 2.x renames to OpenCLIP.</param>
    /// <param name="clipPrefix">SD 1.x's prefix up to and including <c>text_model.</c> (older files omit <c>text_model.</c>).</param>
    public static SingleFileSlot TextEncoder(string key, SingleFileFamily family, string clipPrefix = LdmNames.ClipPrefix + "text_model.")
    {
        const string text = "text_model.";
        if (!key.StartsWith(text, StringComparison.Ordinal)) throw new WeightsException($"'{key}': not a CLIP text-model key");
        string rest = key[text.Length..];
        return family switch
        {
            SingleFileFamily.StableDiffusion1 => new(clipPrefix + rest),
            SingleFileFamily.StableDiffusionXL => new(LdmNames.SdxlClipPrefix + key),
            _ => OpenClip(key, rest, LdmNames.OpenClipPrefix),
        };
    }

    /// <summary>
    /// The slot of an SDXL second-text-encoder key (transformers' <c>CLIPTextModelWithProjection</c> names): OpenCLIP's names
    /// under <see cref="LdmNames.SdxlOpenClipPrefix"/>, as SGM's checkpoints hold them (the text projection transposed).
    /// </summary>
    public static SingleFileSlot TextEncoder2(string key)
    {
        if (key == "text_projection.weight") return new(LdmNames.SdxlOpenClipPrefix + "text_projection", Transposed: true);
        const string text = "text_model.";
        if (!key.StartsWith(text, StringComparison.Ordinal)) throw new WeightsException($"'{key}': not a CLIP text-model key");
        return OpenClip(key, key[text.Length..], LdmNames.SdxlOpenClipPrefix);
    }

    private static SingleFileSlot OpenClip(string key, string rest, string p)
    {
        switch (rest)
        {
            case "embeddings.token_embedding.weight": return new(p + "token_embedding.weight");
            case "embeddings.position_embedding.weight": return new(p + "positional_embedding");
            case var _ when rest.StartsWith("final_layer_norm.", StringComparison.Ordinal): return new(p + "ln_final." + rest["final_layer_norm.".Length..]);
        }
        const string layers = "encoder.layers.";
        if (!rest.StartsWith(layers, StringComparison.Ordinal)) throw new WeightsException($"'{key}': no OpenCLIP name");
        string[] parts = rest[layers.Length..].Split('.', 2);
        string block = $"{p}transformer.resblocks.{parts[0]}.";
        string inner = parts[1];
        string suffix = inner[(inner.LastIndexOf('.') + 1)..]; // weight | bias
        string module = inner[..inner.LastIndexOf('.')];
        return module switch
        {
            "layer_norm1" => new(block + "ln_1." + suffix),
            "layer_norm2" => new(block + "ln_2." + suffix),
            "self_attn.q_proj" => new($"{block}attn.in_proj_{suffix}", 0),
            "self_attn.k_proj" => new($"{block}attn.in_proj_{suffix}", 1),
            "self_attn.v_proj" => new($"{block}attn.in_proj_{suffix}", 2),
            "self_attn.out_proj" => new($"{block}attn.out_proj.{suffix}"),
            "mlp.fc1" => new($"{block}mlp.c_fc.{suffix}"),
            "mlp.fc2" => new($"{block}mlp.c_proj.{suffix}"),
            _ => throw new WeightsException($"'{key}': no OpenCLIP name"),
        };
    }
}
