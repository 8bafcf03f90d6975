using SdPipeline.Models.Unet;

using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>
/// Where each diffusers weight of a component lives in a single file: the full LDM name, and for SD 2.x's fused
/// OpenCLIP attention the third of <c>in_proj_weight</c>/<c>in_proj_bias</c> it is.
/// </summary>
/// <param name="Name">The full key in the single file.</param>
/// <param name="Chunk">For a fused q/k/v tensor, which third (0 = q, 1 = k, 2 = v); else null.</param>
public sealed record SingleFileSlot(string Name, int? Chunk = null);

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
    /// <param name="family">SD 1.x keeps the names under a prefix; SD 2.x renames to OpenCLIP.</param>
    /// <param name="clipPrefix">SD 1.x's prefix up to and including <c>text_model.</c> (older files omit <c>text_model.</c>).</param>
    public static SingleFileSlot TextEncoder(string key, SingleFileFamily family, string clipPrefix = LdmNames.ClipPrefix + "text_model.")
    {
        const string text = "text_model.";
        if (!key.StartsWith(text, StringComparison.Ordinal)) throw new WeightsException($"'{key}': not a CLIP text-model key");
        string rest = key[text.Length..];
        if (family == SingleFileFamily.StableDiffusion1) return new(clipPrefix + rest);

        string p = LdmNames.OpenClipPrefix;
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
