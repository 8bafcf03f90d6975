using System.CommandLine;
using SdPipeline.BaseModel;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe model random</c>: a diffusers folder with a real architecture and random weights.</summary>
internal static class ModelCommand
{
    private static readonly Option<string> Configs = new("--configs")
    {
        Description = "Folder with the model's configs: model_index.json, unet/, vae/, text_encoder/, tokenizer/ and scheduler/ config files (no weights).",
        Required = true,
    };

    private static readonly Option<string> Vocabulary = new("--vocabulary")
    {
        Description = "Folder with the CLIP tokenizer's vocab.json and merges.txt.",
        Required = true,
    };

    private static readonly Option<string> Output = new("--out") { Description = "The folder to create (must not exist).", Required = true };
    private static readonly Option<int> Seed = new("--seed") { Description = "Seed of the random weights.", DefaultValueFactory = _ => 0 };

    public static Command Create()
    {
        var random = new Command("random",
            "Write a diffusers folder with random weights from a model's configs: check that a training setup fits and runs before downloading the real weights.")
        {
            Configs, Vocabulary, Output, Seed,
        };
        random.SetAction(result =>
        {
            string output = result.GetValue(Output)!;
            try
            {
                RandomWeightsFolder.Write(result.GetValue(Configs)!, result.GetValue(Vocabulary)!, output, result.GetValue(Seed));
            }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }
            Console.WriteLine(Path.GetFullPath(output));
            return ExitCodes.Success;
        });
        return new Command("model", "Make model folders.") { random };
    }
}
