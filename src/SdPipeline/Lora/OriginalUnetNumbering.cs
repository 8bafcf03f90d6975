using SdPipeline.SingleFileCheckpoints;

namespace SdPipeline.Lora;

/// <summary>
/// The UNet's layers under the original block numbering (CompVis/SGM: <c>input_blocks.4.1.transformer_blocks.0.attn1.to_q</c>,
/// <c>middle_block.1.…</c>, <c>output_blocks.2.2.conv</c>, <c>label_emb.0.0</c>), which kohya's SDXL trainer writes into LoRA
/// names (<c>lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q</c>): sd-scripts trains SDXL on
/// <c>sdxl_original_unet.py</c>, a UNet with SGM's module tree, and names each adapter by its module path. The numbering
/// is the single-file layout's (<see cref="LdmNames.UnetKey"/>), read off the model's own layers: resnets per down level
/// and which up levels have attention, so any UNet of the supported families maps without its config.
/// </summary>
public static class OriginalUnetNumbering
{
    /// <summary>
    /// The original module path of each diffusers UNet layer path in <paramref name="unetLayerPaths"/> (every linear and
    /// convolution layer of one UNet, as <see cref="LoraNetwork.Layers"/> lists them).
    /// </summary>
    /// <exception cref="SdPipeline.Weights.WeightsException">A layer outside the SD 1.x/2.x and SDXL UNets.</exception>
    public static IReadOnlyDictionary<string, string> Of(IReadOnlyCollection<string> unetLayerPaths)
    {
        ArgumentNullException.ThrowIfNull(unetLayerPaths);
        // Down level 0 always has resnets (and each resnet its conv1), so its count is layers_per_block.
        int layersPerBlock = unetLayerPaths.Where(p => p.StartsWith("down_blocks.0.resnets.", StringComparison.Ordinal))
            .Select(p => p.Split('.')[3]).Distinct(StringComparer.Ordinal).Count();
        var attentionUpLevels = unetLayerPaths.Where(p => p.StartsWith("up_blocks.", StringComparison.Ordinal) && p.Split('.')[2] == "attentions")
            .Select(p => int.Parse(p.Split('.')[1], System.Globalization.CultureInfo.InvariantCulture)).ToHashSet();
        const string weight = ".weight";
        return unetLayerPaths.ToDictionary(path => path,
            path => LdmNames.UnetKey(path + weight, layersPerBlock, attentionUpLevels.Contains)[..^weight.Length], StringComparer.Ordinal);
    }
}
