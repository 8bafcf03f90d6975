using System.CommandLine;
using Newtonsoft.Json;
using Newtonsoft.Json.Serialization;
using SdPipeline.Config;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Numerics;
using SdPipeline.Verification;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Cli.Commands;

/// <summary>
/// <c>sdpipe verify --model DIR --parity DIR</c>: checks a model folder against diffusers' reference tensors and prints
/// one row per check; exit 0 when every row passes, 1 when any fails, 2 when a folder or file is missing.
/// </summary>
internal static class VerifyCommand
{
    private static readonly Option<string> Model = new("--model")
    {
        Description = "The model folder to check (diffusers layout: model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).",
        Required = true,
    };

    private static readonly Option<string> Parity = new("--parity")
    {
        Description = "The parity fixtures: NAME.safetensors + NAME.json pairs, as in shared/fixtures/parity.",
        Required = true,
    };

    private static readonly Option<string?> Tokenization = new("--tokenization")
    {
        Description = "A tokenization reference to check the model's tokenizer against: transformers' format (tokenization_transformers.jsonl, input_ids) or OpenAI's (tokenization.jsonl, ids); default: the parity folder's, if any.",
    };

    private static readonly Option<string?> Json = new("--json") { Description = "Also write the rows to this file as JSON." };

    private static readonly JsonSerializerSettings JsonSettings = new()
    {
        ContractResolver = new DefaultContractResolver { NamingStrategy = new SnakeCaseNamingStrategy() },
        FloatFormatHandling = FloatFormatHandling.String,
        Formatting = Formatting.Indented,
    };

    public static Command Create()
    {
        var command = new Command("verify",
            "Check a model folder against parity fixtures (reference tensors from diffusers); exit 1 if any check fails.")
        {
            Model, Parity, Tokenization, Json,
        };
        command.SetAction(result =>
        {
            string model = result.GetValue(Model)!, parity = result.GetValue(Parity)!;
            string? tokenization = result.GetValue(Tokenization), json = result.GetValue(Json);
            if (!Directory.Exists(model)) throw new ConfigException($"--model: folder '{model}' not found");
            if (!Directory.Exists(parity)) throw new ConfigException($"--parity: folder '{parity}' not found");
            if (tokenization is not null && !File.Exists(tokenization)) throw new ConfigException($"--tokenization: file '{tokenization}' not found");
            DiffusersFolder folder;
            try
            {
                folder = DiffusersFolder.Open(model);
            }
            catch (WeightsException e)
            {
                throw new ConfigException($"--model: {e.Message}");
            }

            Console.WriteLine($"verify {Path.GetFullPath(model)} against {Path.GetFullPath(parity)} (CPU, float32)");
            // As the stages run, under runtime.kernels' default: the checks then cover the kernels a user's run computes with.
            InferenceKernels.Use("auto");
            Console.WriteLine($"GEMM: {LibtorchGemm.Describe()}");
            CheckNumerics(folder);
            foreach (string line in ParityTable.Header()) Console.WriteLine(line);
            var rows = new ParityVerifier(folder, parity, tokenization).Run(row => Console.WriteLine(ParityTable.Line(row)));
            Console.WriteLine(ParityTable.Summary(rows.ToList()));

            if (json is not null) File.WriteAllText(json, JsonConvert.SerializeObject(rows, JsonSettings) + "\n");
            return rows.All(r => r.Passed) ? ExitCodes.Success : ExitCodes.StageFailure;
        });
        return command;
    }

    /// <summary>
    /// The numerics self-check over the model's UNet before its training steps are compared, as the train stage runs it:
    /// a wrong kernel on this CPU is routed around (or named) instead of showing up as failed gradient rows.
    /// </summary>
    private static void CheckNumerics(DiffusersFolder folder)
    {
        string config = Path.Combine(folder.Root, "unet", "config.json");
        if (!File.Exists(config)) return;
        using var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(config), torch.META);
        NumericsGuard.Ensure(OperationInventory.Of(unet), torch.CPU, [torch.ScalarType.Float32], "auto", Console.WriteLine);
    }
}
