using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Weights;
using SdPipeline.SingleFileCheckpoints;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// The fine-tuned model as one original-layout <c>model.safetensors</c> in the train artifact: the trained UNet (and
/// text encoder, when trained) with the base's VAE and text encoder(s), in <c>train.export_dtype</c> — the file to put in
/// AUTOMATIC1111's <c>models/Stable-diffusion/</c> or ComfyUI's <c>models/checkpoints/</c>; SDXL's in SGM's layout.
/// </summary>
public static class SingleFileDeliverable
{
    /// <summary>The file name inside the train artifact.</summary>
    public const string FileName = "model.safetensors";

    /// <summary>Writes the file from the trained components in <paramref name="artifact"/> and the rest of <paramref name="baseModel"/>.</summary>
    /// <returns>The file written.</returns>
    public static string Write(string artifact, DiffusersFolder baseModel, string predictionType, string exportDtype)
    {
        string trainedTextEncoder = Path.Combine(artifact, "text_encoder");
        string textEncoder = Directory.Exists(trainedTextEncoder) ? trainedTextEncoder : baseModel.Component("text_encoder");
        var components = new SingleFileExporter.Components(
            [Path.Combine(artifact, "unet", "diffusion_pytorch_model.safetensors")], UNet2DConditionConfig.Load(Path.Combine(artifact, "unet", "config.json")),
            baseModel.WeightFiles("vae"), AutoencoderKLConfig.Load(Path.Combine(baseModel.Component("vae"), "config.json")),
            Directory.Exists(trainedTextEncoder) ? [Path.Combine(trainedTextEncoder, "model.safetensors")] : baseModel.WeightFiles("text_encoder"),
            ClipTextConfig.Load(Path.Combine(textEncoder, "config.json")),
            predictionType)
        {
            // SDXL: the base's second text encoder (a full SDXL fine-tune trains the UNet only).
            TextEncoder2Files = Directory.Exists(Path.Combine(baseModel.Root, "text_encoder_2")) ? baseModel.WeightFiles("text_encoder_2") : null,
        };
        string path = Path.Combine(artifact, FileName);
        SingleFileExporter.Write(components, path, exportDtype == "fp32" ? ScalarType.Float32 : ScalarType.Float16);
        return path;
    }
}
