using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Weights;
using static TorchSharp.torch;

namespace SdPipeline.Lora;

/// <summary>Rewrites a LoRA file in the other layout (<c>sdpipe lora convert</c>).</summary>
public static class LoraConverter
{
    /// <summary>
    /// Reads <paramref name="input"/> (either layout) and writes it to <paramref name="output"/> in <paramref name="layout"/>.
    /// A kohya input needs <paramref name="model"/>, the diffusers folder of the base model: its names lose the dots of
    /// the module paths, which only the model's layers restore (built on the meta device: no weights are read).
    /// </summary>
    /// <returns>The input's layout and the number of adapted layers.</returns>
    /// <exception cref="WeightsException">Not a LoRA file, or a kohya file without a model to resolve its names.</exception>
    public static (LoraLayout From, int Modules) Convert(string input, string output, LoraLayout layout, DiffusersFolder? model)
    {
        if (model is null && LoraFile.Detect(input) == LoraLayout.Kohya)
            throw new WeightsException($"{input} is in kohya's layout, whose names resolve only against a model: pass --model DIR (the base model's diffusers folder)");
        var layers = new List<(string Component, string Path)>();
        bool sdxl = false;
        IReadOnlyDictionary<string, string>? originalUnetNames = null;
        if (model is not null)
        {
            using var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(model.Component("unet"), "config.json")), Meta);
            using var textEncoder = new ClipTextModel(ClipTextConfig.Load(Path.Combine(model.Component("text_encoder"), "config.json")), Meta);
            string secondConfig = Path.Combine(model.Root, "text_encoder_2", "config.json");
            using var textEncoder2 = File.Exists(secondConfig) ? ClipTextModelWithProjection.FromConfig(secondConfig, device: Meta) : null;
            layers.AddRange(LoraNetwork.Layers(unet, textEncoder, textEncoder2).Keys);
            sdxl = textEncoder2 is not null;
            // kohya's SDXL trainer names the UNet's adapters in the original block numbering; its SD trainer in diffusers'.
            if (sdxl && layout == LoraLayout.Kohya) originalUnetNames = OriginalUnetNumbering.Of(LoraNetwork.UnetLayerPaths(unet));
        }
        var (from, modules) = LoraFile.Read(input, layers);
        try
        {
            LoraFile.Write(output, modules, layout, sdxl, originalUnetNames);
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
