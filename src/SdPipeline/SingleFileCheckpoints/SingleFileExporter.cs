using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

using SdPipeline.Weights;

namespace SdPipeline.SingleFileCheckpoints;

/// <summary>
/// Writes a diffusers model as one original-layout <c>.safetensors</c> file, the file AUTOMATIC1111 and ComfyUI load,
/// as diffusers' <c>scripts/convert_diffusers_to_original_stable_diffusion.py</c> does: the UNet under
/// <c>model.diffusion_model.</c>, the VAE under <c>first_stage_model.</c> (mid-block attention as 1×1 convolutions),
/// the text encoder under <c>cond_stage_model.transformer.</c> (SD 1.x) or as OpenCLIP with fused q/k/v
/// (<c>cond_stage_model.model.</c>, SD 2.x: a text encoder with GELU). An SDXL model is written in SGM's layout, as its
/// published <c>sd_xl_base_1.0.safetensors</c> is and diffusers' <c>convert_diffusers_to_original_sdxl.py</c> writes it:
/// CLIP ViT-L under <c>conditioner.embedders.0.transformer.</c>, OpenCLIP ViT-bigG under <c>conditioner.embedders.1.model.</c>
/// with fused q/k/v and <c>text_projection</c> as OpenCLIP's [hidden, projection] matrix (the script leaves diffusers'
/// <c>text_projection.weight</c> as it is, which SGM's code does not read). A v-prediction model also gets the empty
/// <c>v_pred</c> tensor, the marker ComfyUI reads for SDXL (and the importer here for every family; AUTOMATIC1111 needs a
/// <c>.yaml</c> beside the file instead).
/// </summary>
public static class SingleFileExporter
{
    /// <summary>The components to export: each one's weight files (diffusers names) and config.</summary>
    /// <param name="UnetFiles">The UNet's safetensors files.</param>
    /// <param name="Unet">The UNet's config.</param>
    /// <param name="VaeFiles">The VAE's safetensors files.</param>
    /// <param name="Vae">The VAE's config.</param>
    /// <param name="TextEncoderFiles">The text encoder's safetensors files.</param>
    /// <param name="TextEncoder">The text encoder's config.</param>
    /// <param name="PredictionType">The scheduler's prediction type.</param>
    public sealed record Components(
        IReadOnlyList<string> UnetFiles, UNet2DConditionConfig Unet,
        IReadOnlyList<string> VaeFiles, AutoencoderKLConfig Vae,
        IReadOnlyList<string> TextEncoderFiles, ClipTextConfig TextEncoder,
        string PredictionType)
    {
        /// <summary>SDXL's second text encoder's safetensors files (<c>text_encoder_2/</c>), or null for SD 1.x/2.x.</summary>
        public IReadOnlyList<string>? TextEncoder2Files { get; init; }

        /// <summary>The layout the components are written in.</summary>
        public SingleFileFamily Family => TextEncoder2Files is not null ? SingleFileFamily.StableDiffusionXL : FamilyOf(TextEncoder);
    }

    /// <summary>The family a text encoder makes a model: OpenCLIP (GELU) is SD 2.x.</summary>
    public static SingleFileFamily FamilyOf(ClipTextConfig textEncoder) =>
        textEncoder.HiddenAct == "gelu" ? SingleFileFamily.StableDiffusion2 : SingleFileFamily.StableDiffusion1;

    /// <summary>Writes <paramref name="components"/> to <paramref name="path"/> with floating-point tensors in <paramref name="dtype"/>.</summary>
    /// <returns>The number of tensors written.</returns>
    public static int Write(Components components, string path, ScalarType dtype)
    {
        var family = components.Family;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var fused = new Dictionary<string, Tensor?[]>(StringComparer.Ordinal);
        try
        {
            Add(components.UnetFiles, key => SingleFileNames.Unet(key, components.Unet), tensors, fused, dtype, reshapeVae: null);
            // A VAE file from old diffusers (SD 2.1-base's) names the mid-block attention query/key/value/proj_attn, as the loader accepts.
            Add(components.VaeFiles, key => SingleFileNames.Vae(key, components.Vae.BlockOutChannels.Count), tensors, fused, dtype, reshapeVae: true,
                compatibility: AutoencoderKL.LegacyKeys);
            Add(components.TextEncoderFiles, key => SingleFileNames.TextEncoder(key, family), tensors, fused, dtype, reshapeVae: null,
                skip: key => key.EndsWith("position_ids", StringComparison.Ordinal));
            if (components.TextEncoder2Files is { } second)
                Add(second, SingleFileNames.TextEncoder2, tensors, fused, dtype, reshapeVae: null, skip: key => key.EndsWith("position_ids", StringComparison.Ordinal));
            foreach (var (name, parts) in fused)
            {
                if (parts.Any(p => p is null)) throw new WeightsException($"{name}: the text encoder lacks one of q/k/v");
                tensors[name] = torch.cat(parts!, 0);
                foreach (var part in parts) part!.Dispose();
            }
            fused.Clear();
            if (components.PredictionType == "v_prediction") tensors["v_pred"] = torch.empty(0, dtype);
            SafeTensorsWriter.Write(path, tensors);
            return tensors.Count;
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            foreach (var parts in fused.Values)
                foreach (var part in parts) part?.Dispose();
        }
    }

    private static void Add(IReadOnlyList<string> files, Func<string, SingleFileSlot> slotOf, Dictionary<string, Tensor> tensors,
        Dictionary<string, Tensor?[]> fused, ScalarType dtype, bool? reshapeVae, Func<string, bool>? skip = null, KeyCompatibility? compatibility = null)
    {
        foreach (string path in files)
        {
            using var file = SafeTensorsFile.Open(path);
            foreach (var entry in file.Entries)
            {
                if (skip?.Invoke(entry.Name) == true) continue;
                if ((compatibility ?? KeyCompatibility.Strict).KeyOf(entry.Name, file) is not { } key) continue; // as the loader reads it
                var slot = slotOf(key);
                var tensor = file.Read(entry.Name);
                if (tensor.is_floating_point() && tensor.dtype != dtype)
                {
                    var cast = tensor.to(dtype);
                    tensor.Dispose();
                    tensor = cast;
                }
                if (reshapeVae == true && LdmNames.IsVaeAttentionProjection(key) && tensor.dim() == 2)
                {
                    var conv = tensor.reshape(tensor.shape[0], tensor.shape[1], 1, 1);
                    tensor.Dispose();
                    tensor = conv;
                }
                if (slot.Transposed)
                {
                    var transposed = tensor.t().contiguous();
                    tensor.Dispose();
                    tensor = transposed;
                }
                if (slot.Chunk is int chunk)
                {
                    var parts = fused.TryGetValue(slot.Name, out var existing) ? existing : fused[slot.Name] = new Tensor?[3];
                    parts[chunk] = tensor;
                }
                else if (!tensors.TryAdd(slot.Name, tensor))
                {
                    tensor.Dispose();
                    throw new WeightsException($"{path}: '{entry.Name}' and another weight both map to '{slot.Name}'");
                }
            }
        }
    }
}
