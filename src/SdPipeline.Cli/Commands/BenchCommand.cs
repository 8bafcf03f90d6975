using System.CommandLine;
using System.Globalization;
using SdPipeline.Benchmarks;
using SdPipeline.Models.Shared;
using SdPipeline.Numerics;
using SdPipeline.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe bench unet|vae|train-step|latents|kernels</c>: model speed against the machine's fp32 matmul ceiling, and each inference kernel choice against the paths not taken, written to JSON.</summary>
internal static class BenchCommand
{
    private static readonly Option<string> Sizes = new("--sizes")
    {
        Description = "Latent sizes, comma-separated (pixels are 8x for SD): 32 = 256 px, 64 = 512 px.",
        DefaultValueFactory = _ => "32,64",
    };

    private static readonly Option<int> Batch = new("--batch") { Description = "Samples per run.", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> Repeats = new("--repeats") { Description = "Timed runs per case (the median is reported).", DefaultValueFactory = _ => 3 };
    // Two, as PyTorch's figures beside these were timed (ENVIRONMENT.md, docs/pytorch-peer/sd15_peer.py): a training
    // step's second run still faults in ~0.14 GiB (most likely its activations laid out anew around AdamW's moments,
    // which the first step allocated) and was the slowest timed step in five of seven processes with one warm-up
    // (AMD EPYC Zen 4, docs/performance.md).
    private static readonly Option<int> Warmup = new("--warmup") { Description = "Untimed runs before the timed ones, per case (2, as PyTorch's figures were timed).", DefaultValueFactory = _ => 2 };
    private static readonly Option<int> KernelWarmup = new("--warmup") { Description = "Untimed rounds before the timed ones.", DefaultValueFactory = _ => 1 };
    private static readonly Option<int> Threads = new("--threads") { Description = "CPU threads for libtorch; 0 uses every core.", DefaultValueFactory = _ => 0 };
    private static readonly Option<string> OneDnnOption = new("--onednn")
    {
        Description = "oneDNN for convolutions, as runtime.onednn: auto (the numerics self-check decides, as in training), on, off.",
        DefaultValueFactory = _ => "auto",
    };
    private static readonly Option<string> KernelsOption = new("--kernels")
    {
        Description = "The project's own kernels, as runtime.kernels: auto (where this CPU vendor's rules choose them; on AMD CPUs also training's attention over long sequences and 3x3 convolutions, and libtorch's float32 GEMM calls, training included, by oneDNN's brgemm), amd or intel (that vendor's rules on any CPU, to time both on yours), off (every layer and product as libtorch runs it).",
        DefaultValueFactory = _ => "auto",
    };
    private static readonly Option<int> Seed = new("--seed") { Description = "Seed of the random weights and inputs.", DefaultValueFactory = _ => 0 };
    private static readonly Option<int> MatmulSize = new("--matmul-size") { Description = "n of the n³ fp32 matmul that measures the ceiling.", DefaultValueFactory = _ => 4096 };
    private static readonly Option<string?> Output = new("--output") { Description = "JSON file to write (default: ARTIFACTS/bench/ and the command's name: unet.json, vae.json, train_step.json, kernels.json...)." };
    private static readonly Option<string?> ConfigFile = new("--config-file")
    {
        Description = "A diffusers config.json to benchmark instead of the built-in Stable Diffusion 1.5 architecture.",
    };

    private static readonly Option<string> StepSizes = new("--sizes")
    {
        Description = "Latent sizes, comma-separated (pixels are 8x for SD): 32 = 256 px, the PyTorch comparison.",
        DefaultValueFactory = _ => "32",
    };

    private static readonly Option<string> MixedPrecision = new("--mixed-precision")
    {
        Description = "Compute precision of the step, as train.mixed_precision: no, bf16 or fp16 (no loss scaling here).",
        DefaultValueFactory = _ => "no",
    };

    private static readonly Option<bool> GradientCheckpointing = new("--gradient-checkpointing")
    {
        Description = "Recompute the UNet's blocks in backward, as train.gradient_checkpointing.",
    };

    private static readonly Option<bool> FusedBackwardPass = new("--fused-backward-pass")
    {
        Description = "Step AdamW per parameter inside backward, as train.fused_backward_pass (no gradients held; AdamW's phase is then the rest of the step).",
    };

    private static readonly Option<double> MaxGradNorm = new("--max-grad-norm")
    {
        Description = "Clip the global gradient norm to this before AdamW, as train.max_grad_norm (training's default: 1); the clipping is timed as its own phase. 0 times the step PyTorch was measured on, without it.",
        DefaultValueFactory = _ => 0,
    };

    private static readonly Option<bool> Ema = new("--ema")
    {
        Description = "Update an exponential moving average of the weights after AdamW, as train.use_ema (its own phase; the average's copy of the weights counts in the peak).",
    };

    /// <param name="cancellation">Ctrl+C and SIGTERM: the benchmark stops after the run under way, without a report.</param>
    public static Command Create(CancellationToken cancellation)
    {
        var command = new Command("bench", "Time model forward/backward passes and training steps against the machine's fp32 matmul ceiling and, where measured, PyTorch's figure on the same CPU model (random weights; JSON report).");
        command.Subcommands.Add(Model("unet", "SD 1.5 UNet: forward (no_grad, in eval mode as sampling runs it: on AVX-512 its 3x3 convolutions at 32x32 and above by Winograd's F(2x2,3x3) (on AMD CPUs from 16x16, at 16x16 through a channels-last copy), its 1280-channel ones at 16x16 and below (4x4 on AMD CPUs) with oneDNN off, on libtorch's own path; on AMD CPUs its linear layers and its plain-layout Winograd products by oneDNN's brgemm kernel) and forward+backward, per latent size.", UnetBenchmark.Run, Sizes, cancellation));
        command.Subcommands.Add(Model("vae", "SD 1.5 VAE: encode and decode (no_grad, in eval mode as the latents stage and sampling run it: on AVX-512 its 3x3 convolutions by Winograd's F(2x2,3x3), on AMD CPUs with their products by oneDNN's brgemm kernel), per latent size, and encode+decode images/s.", VaeBenchmark.Run, Sizes, cancellation));
        command.Subcommands.Add(Model("train-step",
            "SD 1.5 UNet training step (forward, MSE, backward, AdamW over every parameter), each phase timed, batch 1 at 32x32 latents by default.",
            TrainStepBenchmark.Run, StepSizes, cancellation, MixedPrecision, GradientCheckpointing, FusedBackwardPass, MaxGradNorm, Ema));
        command.Subcommands.Add(Model("latents",
            "The latent cache's per-image work: preprocessing (decode, Lanczos resize, crop) and SD 1.5 VAE encode, images/s at 256 and 512 px.",
            LatentsBenchmark.Run, Sizes, cancellation));
        command.Subcommands.Add(Kernels(cancellation));
        return command;
    }

    private static readonly Option<string> KernelModels = new("--models")
    {
        Description = "Whose inference to examine, comma-separated: unet (one forward), vae (encode and decode).",
        DefaultValueFactory = _ => "unet,vae",
    };
    private static readonly Option<int?> KernelBatch = new("--batch") { Description = "Samples per run (default: 2 for the UNet, one guided sampling step; 1 for the VAE)." };
    private static readonly Option<int> KernelRepeats = new("--repeats") { Description = "Timed rounds per case, every path once a round (the median is reported).", DefaultValueFactory = _ => 5 };
    private static readonly Option<string?> KernelConfigFile = new("--config-file")
    {
        Description = "A diffusers config.json for the one model named by --models, instead of Stable Diffusion 1.5's.",
    };

    /// <summary><c>sdpipe bench kernels</c>: whether the kernel-choice rules pick the fastest path on this CPU (<see cref="KernelBenchmark"/>).</summary>
    private static Command Kernels(CancellationToken cancellation)
    {
        var command = new Command("kernels",
            "Whether the rules that choose the models' inference kernels (Winograd or oneDNN or libtorch's own convolution, the GroupNorm, "
            + "attention and linear kernels) choose the fastest path on this CPU: every distinct call of an SD 1.5 UNet forward and VAE encode and "
            + "decode, timed by each path that can make it (interleaved rounds) and its output compared with libtorch's. Exit code 1 if a "
            + "path's output is not libtorch's to float32 rounding.")
        {
            Sizes, KernelModels, KernelBatch, KernelRepeats, KernelWarmup, Threads, OneDnnOption, KernelsOption, Seed, Output, KernelConfigFile,
        };
        command.SetAction(result =>
        {
            KernelBenchmarkOptions options;
            try
            {
                int? batch = result.GetValue(KernelBatch);
                options = new KernelBenchmarkOptions
                {
                    Models = result.GetValue(KernelModels)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                    Sizes = ParseSizes(result.GetValue(Sizes)!),
                    UnetBatch = batch ?? 2,
                    VaeBatch = batch ?? 1,
                    Repeats = result.GetValue(KernelRepeats),
                    Warmup = result.GetValue(KernelWarmup),
                    Seed = result.GetValue(Seed),
                    ConfigFile = result.GetValue(KernelConfigFile),
                };
                options.Validate();
                CheckRuntimeOptions(result);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }

            if (result.GetValue(GlobalOptions.Device) is { } asked && asked != "cpu")
            {
                Console.Error.WriteLine($"error: bench kernels examines the CPU kernels; --device {asked} does not apply (leave it out)");
                return ExitCodes.Usage;
            }
            string output = result.GetValue(Output) ?? Path.Combine(result.GetValue(GlobalOptions.Artifacts)!, "bench", "kernels.json");
            var device = TorchRuntime.Initialise("cpu", result.GetValue(Threads));
            InferenceKernels.Use(result.GetValue(KernelsOption)!);
            Console.Error.WriteLine($"CPU: {CpuModel.Name}");
            // As sampling runs: the self-check decides oneDNN under auto.
            NumericsGuard.Ensure(Sd15Probes(), device, [ScalarType.Float32], result.GetValue(OneDnnOption)!, line => Console.Error.WriteLine(line));
            Console.Error.WriteLine($"oneDNN: {(OneDnn.Enabled ? "on" : "off")}");
            Console.Error.WriteLine($"kernels: {InferenceKernels.Describe()}");
            Console.Error.WriteLine($"GEMM: {LibtorchGemm.Describe()}");
            return RunAndReport(() => KernelBenchmark.Run(options, device, line => Console.Error.WriteLine(line), cancellation), output, cancellation,
                report => report.Write(output), report => report.Format(),
                report => report.Disagreements.Count == 0 ? ExitCodes.Success : ExitCodes.StageFailure);
        });
        return command;
    }

    private static Command Model(string name, string description, Func<BenchmarkOptions, Device, Action<string>?, CancellationToken, BenchmarkReport> run,
        Option<string> sizes, CancellationToken cancellation, Option<string>? mixedPrecision = null, Option<bool>? checkpointing = null, Option<bool>? fusedBackwardPass = null,
        Option<double>? maxGradNorm = null, Option<bool>? ema = null)
    {
        var command = new Command(name, description) { sizes, Batch, Repeats, Warmup, Threads, OneDnnOption, KernelsOption, Seed, MatmulSize, Output, ConfigFile };
        if (mixedPrecision is not null) command.Options.Add(mixedPrecision);
        if (checkpointing is not null) command.Options.Add(checkpointing);
        if (fusedBackwardPass is not null) command.Options.Add(fusedBackwardPass);
        if (maxGradNorm is not null) command.Options.Add(maxGradNorm);
        if (ema is not null) command.Options.Add(ema);
        command.SetAction(result =>
        {
            BenchmarkOptions options;
            try
            {
                options = new BenchmarkOptions
                {
                    Sizes = ParseSizes(result.GetValue(sizes)!),
                    Batch = result.GetValue(Batch),
                    Repeats = result.GetValue(Repeats),
                    Warmup = result.GetValue(Warmup),
                    Seed = result.GetValue(Seed),
                    MatmulSize = result.GetValue(MatmulSize),
                    ConfigFile = result.GetValue(ConfigFile),
                    MixedPrecision = mixedPrecision is null ? "no" : result.GetValue(mixedPrecision)!,
                    GradientCheckpointing = checkpointing is not null && result.GetValue(checkpointing),
                    FusedBackwardPass = fusedBackwardPass is not null && result.GetValue(fusedBackwardPass),
                    MaxGradNorm = maxGradNorm is null ? 0 : result.GetValue(maxGradNorm),
                    Ema = ema is not null && result.GetValue(ema),
                };
                options.Validate();
                CheckRuntimeOptions(result);
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }

            string output = result.GetValue(Output) ?? Path.Combine(result.GetValue(GlobalOptions.Artifacts)!, "bench", $"{name.Replace('-', '_')}.json");
            var device = TorchRuntime.Initialise(result.GetValue(GlobalOptions.Device) ?? "cpu", result.GetValue(Threads));
            InferenceKernels.Use(result.GetValue(KernelsOption)!);
            Console.Error.WriteLine($"CPU: {CpuModel.Name}");
            // As training runs: the self-check decides oneDNN under runtime.onednn=auto, so a workaround's cost is in the figures,
            // and a training step runs on the convolution path training would choose for the UNet.
            string? offUnderAuto;
            try
            {
                offUnderAuto = name == "train-step"
                    ? Training.TrainingConvolutions.OneDnnOffReason(options.UnetConfig(), autocast: options.MixedPrecision != "no")
                    : null;
            }
            catch (DiffusersConfigException e)
            {
                Console.Error.WriteLine($"error: {e.Message}");
                return ExitCodes.Usage;
            }
            NumericsGuard.Ensure(Sd15Probes(), device, [ScalarType.Float32], result.GetValue(OneDnnOption)!, line => Console.Error.WriteLine(line), offUnderAuto);
            Console.Error.WriteLine($"oneDNN: {(OneDnn.Enabled ? "on" : "off")}");
            Console.Error.WriteLine($"kernels: {InferenceKernels.Describe()}");
            Console.Error.WriteLine($"GEMM: {LibtorchGemm.Describe()}");
            return RunAndReport(() => run(options, device, line => Console.Error.WriteLine(line), cancellation), output, cancellation,
                report => report.Write(output), BenchmarkTable.Format, _ => ExitCodes.Success);
        });
        return command;
    }

    // The options every bench subcommand shares with runtime.*: --kernels, --onednn, --threads.
    private static void CheckRuntimeOptions(ParseResult result)
    {
        if (!InferenceKernels.Settings.Contains(result.GetValue(KernelsOption)))
            throw new ArgumentException($"--kernels '{result.GetValue(KernelsOption)}' is not one of {string.Join(", ", InferenceKernels.Settings)}");
        if (!NumericsGuard.OneDnnSettings.Contains(result.GetValue(OneDnnOption)))
            throw new ArgumentException($"--onednn '{result.GetValue(OneDnnOption)}' is not one of {string.Join(", ", NumericsGuard.OneDnnSettings)}");
        if (result.GetValue(Threads) < 0) throw new ArgumentException($"--threads {result.GetValue(Threads)} cannot be negative");
    }

    // Runs a benchmark, then writes its report and prints its table; an interruption writes nothing (exit 1), a config
    // file that cannot be read is bad usage (exit 2).
    private static int RunAndReport<T>(Func<T> run, string output, CancellationToken cancellation, Action<T> write, Func<T, string> format, Func<T, int> exitCode)
    {
        T report;
        try
        {
            report = run();
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            Console.Error.WriteLine($"interrupted: no report written ({output} is unchanged)");
            return ExitCodes.StageFailure;
        }
        catch (DiffusersConfigException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return ExitCodes.Usage;
        }
        write(report);
        Console.Write(format(report));
        Console.WriteLine($"written: {output}");
        return exitCode(report);
    }

    private static IReadOnlyList<OperationProbe> Sd15Probes()
    {
        using var unet = new Models.Unet.UNet2DConditionModel(Sd15Configs.Unet, torch.META);
        using var vae = new Models.Vae.AutoencoderKL(Sd15Configs.Vae, torch.META);
        return OperationInventory.Of(unet, vae);
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
