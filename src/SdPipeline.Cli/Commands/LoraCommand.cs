using System.CommandLine;
using SdPipeline.Config;
using SdPipeline.Lora;
using SdPipeline.Weights;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe lora convert IN OUT --to kohya|diffusers [--model DIR]</c>: a LoRA file in the other layout.</summary>
internal static class LoraCommand
{
    private static readonly Argument<string> Input = new("input") { Description = "The LoRA file (safetensors, diffusers/PEFT or kohya layout)." };

    private static readonly Argument<string> Output = new("output") { Description = "Where to write the converted file." };

    private static readonly Option<string> To = new("--to")
    {
        Description = "The layout to write: kohya (ComfyUI, AUTOMATIC1111) or diffusers (load_lora_weights).",
        Required = true,
    };

    private static readonly Option<string?> Model = new("--model")
    {
        Description = "The base model's diffusers folder (its configs are enough); needed to read a kohya file (its names resolve against the model's layers) and to write one (its names and metadata depend on the model's family: SD 1.x, 2.x or SDXL).",
    };

    public static Command Create()
    {
        To.AcceptOnlyFromAmong("kohya", "diffusers");
        var convert = new Command("convert", "Rewrite a LoRA file in the diffusers/PEFT or the kohya layout.") { Input, Output, To, Model };
        convert.SetAction(result =>
        {
            var layout = result.GetValue(To) == "kohya" ? LoraLayout.Kohya : LoraLayout.Diffusers;
            // A path that names nothing is a mistake in the command (exit 2), not a bad file (exit 1).
            string input = result.GetValue(Input)!;
            if (!File.Exists(input)) throw new ConfigException($"lora convert: input '{input}' not found (read from {Environment.CurrentDirectory})");
            if (result.GetValue(Model) is { } modelFolder && !Directory.Exists(modelFolder))
                throw new ConfigException($"--model: folder '{modelFolder}' not found (read from {Environment.CurrentDirectory})");
            var model = result.GetValue(Model) is { } folder ? DiffusersFolder.Open(folder) : null;
            var (from, modules) = LoraConverter.Convert(result.GetValue(Input)!, result.GetValue(Output)!, layout, model);
            Console.WriteLine($"{modules} adapted layers: {from} → {layout} ({result.GetValue(Output)})");
            return ExitCodes.Success;
        });
        return new Command("lora", "LoRA files: convert between the diffusers/PEFT and kohya layouts.") { convert };
    }
}
