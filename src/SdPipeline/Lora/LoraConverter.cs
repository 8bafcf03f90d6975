using SdPipeline.Config;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.SingleFileCheckpoints;
using SdPipeline.Weights;
using static TorchSharp.torch;

namespace SdPipeline.Lora;

/// <summary>Rewrites a LoRA file in the other layout (<c>sdpipe lora convert</c>).</summary>
public static class LoraConverter
{
    /// <summary>
    /// Reads <paramref name="input"/> (either layout) and writes it to <paramref name="output"/> in <paramref name="layout"/>.
    /// A kohya input needs <paramref name="model"/>, the diffusers folder of the base model: its names lose the dots of
    /// the module paths, which only the model's layers restore (built on the meta device: no weights are read). A kohya
    /// output needs it too: kohya's files differ by family (an SDXL UNet in the original block numbering and
    /// <c>ss_base_model_version</c>, SD 2.x's <c>ss_v2</c>), and a diffusers file does not say which family it is for
    /// (an SDXL LoRA on the UNet alone looks like an SD 1.x one).
    /// </summary>
    /// <returns>The input's layout and the number of adapted layers.</returns>
    /// <exception cref="WeightsException">Not a LoRA file, or a kohya file without a model to resolve its names.</exception>
    /// <exception cref="ConfigException">A kohya output without a model.</exception>
    public static (LoraLayout From, int Modules) Convert(string input, string output, LoraLayout layout, DiffusersFolder? model)
    {
        if (model is null && LoraFile.Detect(input) == LoraLayout.Kohya)
            throw new WeightsException($"{input} is in kohya's layout, whose names resolve only against a model: pass --model DIR (the base model's diffusers folder)");
        if (model is null && layout == LoraLayout.Kohya)
            throw new ConfigException($"--to kohya needs --model DIR (the base model's diffusers folder; its configs are enough): kohya's names and metadata depend on " +
                "the model's family (SDXL: the original block numbering and ss_base_model_version, without which AUTOMATIC1111 lists the LoRA for SD 1.x; " +
                $"SD 2.x: ss_v2), which {input} does not record");
        var layers = new List<(string Component, string Path)>();
        bool sdxl = false, sd2 = false;
        IReadOnlyDictionary<string, string>? originalUnetNames = null;
        if (model is not null)
        {
            using var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(model.Component("unet"), "config.json")), Meta);
            using var textEncoder = new ClipTextModel(ClipTextConfig.Load(Path.Combine(model.Component("text_encoder"), "config.json")), Meta);
            string secondConfig = Path.Combine(model.Root, "text_encoder_2", "config.json");
            using var textEncoder2 = File.Exists(secondConfig) ? ClipTextModelWithProjection.FromConfig(secondConfig, device: Meta) : null;
            layers.AddRange(LoraNetwork.Layers(unet, textEncoder, textEncoder2).Keys);
            sdxl = textEncoder2 is not null;
            sd2 = !sdxl && SingleFileExporter.FamilyOf(textEncoder.Config) == SingleFileFamily.StableDiffusion2;
            // kohya's SDXL trainer names the UNet's adapters in the original block numbering; its SD trainer in diffusers'.
            if (sdxl && layout == LoraLayout.Kohya) originalUnetNames = OriginalUnetNumbering.Of(LoraNetwork.UnetLayerPaths(unet));
        }
        var (from, modules) = LoraFile.Read(input, layers);
        try
        {
            LoraFile.Write(output, modules, layout, sdxl, originalUnetNames, sd2);
            return (from, modules.Count);
        }
        finally
        {
            foreach (var module in modules)
            {
                module.Down.Dispose();
                module.Up.Dispose();
            }
        }
    }

    private static Device Meta => new("meta");
}
