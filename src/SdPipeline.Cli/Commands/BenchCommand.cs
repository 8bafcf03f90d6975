using System.CommandLine;
using System.Globalization;
using SdPipeline.Benchmarks;
using SdPipeline.Models.Shared;
using SdPipeline.Runtime;
using static TorchSharp.torch;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe bench unet|vae</c>: model speed against the machine's fp32 matmul ceiling, written to JSON.</summary>
internal static class BenchCommand
{
    private static readonly Option<string> Sizes = new("--sizes")
    {
        Description = "Latent sizes, comma-separated (pixels are 8x for SD): 32 = 256 px, 64 = 512 px.",
        DefaultValueFactory = _ => "32,64",
    };

    private static readonly Option<int> Batch = new("--batch") { Description = "Samples per run.", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> Repeats = new("--repeats") { Description = "Timed runs per case (the median is reported).", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> Warmup = new("--warmup") { Description = "Untimed runs before the timed ones, per case.", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> Threads = new("--threads") { Description = "CPU threads for libtorch; 0 uses every core.", DefaultValueFactory = _ => 0 };
    private static readonly Option<int> Seed = new("--seed") { Description = "Seed of the random weights and inputs.", DefaultValueFactory = _ => 0 };
    private static readonly Option<int> MatmulSize = new("--matmul-size") { Description = "n of the n³ fp32 matmul that measures the ceiling.", DefaultValueFactory = _ => 4096 };
    private static readonly Option<string?> Output = new("--output") { Description = "JSON file to write (default: ARTIFACTS/bench/MODEL.json)." };
    private static readonly Option<string?> ConfigFile = new("--config-file")
    {
        Description = "A diffusers config.json to benchmark instead of the built-in Stable Diffusion 1.5 architecture.",
    };

    public static Command Create()
    {
        var command = new Command("bench", "Time model forward/backward passes against the machine's fp32 matmul ceiling (random weights; JSON report).");
        command.Subcommands.Add(Model("unet", "SD 1.5 UNet: forward (no_grad) and forward+backward, per latent size.", UnetBenchmark.Run));
        command.Subcommands.Add(Model("vae", "SD 1.5 VAE: encode and decode (no_grad), per latent size, and encode+decode images/s.", VaeBenchmark.Run));
        return command;
    }

    private static Command Model(string name, string description, Func<BenchmarkOptions, Device, Action<string>?, BenchmarkReport> run)
    {
        var command = new Command(name, description) { Sizes, Batch, Repeats, Warmup, Threads, Seed, MatmulSize, Output, ConfigFile };
        command.SetAction(result =>
        {
            BenchmarkOptions options;
            try
            {
                options = new BenchmarkOptions
                {
                    Sizes = ParseSizes(result.GetValue(Sizes)!),
                    Batch = result.GetValue(Batch),
                    Repeats = result.GetValue(Repeats),
                    Warmup = result.GetValue(Warmup),
                    Seed = result.GetValue(Seed),
                    MatmulSize = result.GetValue(MatmulSize),
                    ConfigFile = result.GetValue(ConfigFile),
                };
                options.Validate();
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }
            if (result.GetValue(Threads) < 0)
            {
                Console.Error.WriteLine($"error: --threads {result.GetValue(Threads)} cannot be negative");
                return ExitCodes.Usage;
            }

            string output = result.GetValue(Output) ?? Path.Combine(result.GetValue(GlobalOptions.Artifacts)!, "bench", $"{name}.json");
            var device = TorchRuntime.Initialise(result.GetValue(GlobalOptions.Device) ?? "cpu", result.GetValue(Threads));
            BenchmarkReport report;
            try
            {
                report = run(options, device, line => Console.Error.WriteLine(line));
            }
            catch (DiffusersConfigException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }
            report.Write(output);
            Console.Write(BenchmarkTable.Format(report));
            Console.WriteLine($"written: {output}");
            return ExitCodes.Success;
        });
        return command;
    }

    private static List<int> ParseSizes(string text)
    {
        var sizes = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int size) || size < 1)
                throw new ArgumentException($"--sizes: '{part}' is not a positive integer (give latent sizes such as 32,64)");
            sizes.Add(size);
        }
        return sizes;
    }
}
