using System.CommandLine;
using SdPipeline.Benchmarks;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Numerics;
using SdPipeline.Runtime;
using TorchSharp;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe doctor</c>: proves the tensor runtime works here, with real operations.</summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var command = new Command("doctor",
            "Load libtorch, run a matmul with a known answer, run the numerics self-check on the SD 1.5 architecture, and print versions, " +
            "device, threads, the memory allocator and libtorch's own warnings.");
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result).Typed.Runtime;
            var device = TorchRuntime.Initialise(config.Device, config.Threads);
            InferenceKernels.Use(config.Kernels);
            var facts = TorchRuntime.Probe(device);
            Console.WriteLine($"TorchSharp:      {facts.TorchSharpVersion}");
            Console.WriteLine($"libtorch:        {facts.LibTorchVersion}");
            Console.WriteLine($"CPU:             {CpuModel.Name}");
            Console.WriteLine($"device:          {facts.Device} (CUDA available: {(facts.CudaAvailable ? "yes" : "no")})");
            Console.WriteLine($"threads:         {facts.Threads}");
            Console.WriteLine($"allocator:       {NativeAllocator.Describe()}");
            Console.WriteLine($"libtorch log:    warnings shown here (elsewhere only with {LibTorchLog.ShowVariable}=1); any appear on standard error");
            Console.WriteLine($"oneDNN:          {(OneDnn.Available ? OneDnn.Enabled ? "on" : "off" : "no switch in this libtorch")}");
            Console.WriteLine($"kernels:         {InferenceKernels.Describe()}");
            Console.WriteLine($"GEMM:            {LibtorchGemm.Describe()}");
            Console.WriteLine($"matmul 512³:     {facts.MatmulGflops:0.0} GFLOP/s, result {(facts.CheckPassed ? "correct" : "WRONG")}");
            bool numericsRight = SelfCheck(device, config.Onednn);
            return facts.CheckPassed && numericsRight ? ExitCodes.Success : ExitCodes.StageFailure;
        });
        return command;
    }

    /// <summary>The self-check over SD 1.5's UNet and VAE (built without weights); true when training here would compute right.</summary>
    private static bool SelfCheck(torch.Device device, string oneDnn)
    {
        using var unet = new UNet2DConditionModel(Sd15Configs.Unet, torch.META);
        using var vae = new AutoencoderKL(Sd15Configs.Vae, torch.META);
        var probes = OperationInventory.Of(unet, vae);
        var report = NumericsSelfCheck.Run(probes, device, [torch.ScalarType.Float32]);
        Console.WriteLine($"numerics:        {report.Results.Count} operation configurations of the SD 1.5 UNet and VAE, forward and backward in float32 " +
                          $"against float64: {(report.Passed ? "all right" : $"{report.Failures.Count} WRONG")} ({report.Seconds:0.00} s)");
        foreach (var failure in report.Failures) Console.WriteLine($"  wrong: {failure}");
        if (report.Passed) return true;
        if (device.type != DeviceType.CPU || oneDnn == "on" || !OneDnn.Enabled || !OneDnn.TrySetEnabled(false))
        {
            Console.WriteLine("  no workaround applies here: training would stop at its self-check");
            return false;
        }
        var without = NumericsSelfCheck.Run(report.Failures.Select(f => f.Probe), device, [torch.ScalarType.Float32]);
        Console.WriteLine($"  with oneDNN off: {(without.Passed ? "all right — training turns oneDNN off by itself (runtime.onednn=auto)" : $"{without.Failures.Count} still wrong")}");
        return without.Passed;
    }
}
