using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Runtime;

/// <summary>Facts about the tensor runtime, measured with a real tensor operation.</summary>
/// <param name="TorchSharpVersion">TorchSharp assembly version.</param>
/// <param name="LibTorchVersion">libtorch version the native library reports.</param>
/// <param name="Device">The device tensor work will use.</param>
/// <param name="Threads">CPU threads libtorch uses.</param>
/// <param name="CudaAvailable">Whether CUDA is usable.</param>
/// <param name="MatmulGflops">Measured fp32 matmul rate (512³, best of 3).</param>
/// <param name="CheckPassed">Whether the matmul produced the known result.</param>
public sealed record TorchFacts(string TorchSharpVersion, string LibTorchVersion, string Device, int Threads, bool CudaAvailable, double MatmulGflops, bool CheckPassed);

/// <summary>Device choice and thread setup for every stage that does tensor work.</summary>
public static class TorchRuntime
{
    /// <summary>
    /// Sets the thread count (0: every core) and resolves <paramref name="device"/> (cpu, cuda, auto).
    /// A CUDA request on a machine or build without CUDA fails here, before any work, saying what is missing.
    /// </summary>
    public static Device Initialise(string device, int threads)
    {
        if (threads > 0) torch.set_num_threads(threads);
        return device switch
        {
            "cpu" => torch.CPU,
            "auto" => torch.cuda.is_available() ? torch.CUDA : torch.CPU,
            "cuda" => torch.cuda.is_available()
                ? torch.CUDA
                : throw new Pipeline.StageFailedException(
                    "runtime.device is cuda, but CUDA is not available: " + CudaProblem() +
                    " Use --set runtime.device=cpu to run on the CPU."),
            _ => throw new Config.ConfigException($"runtime.device '{device}' is not one of cpu, cuda, auto"),
        };
    }

    /// <summary>Runs a matmul with a known answer and measures its rate, so <c>sdpipe doctor</c> reports facts, not assumptions.</summary>
    public static TorchFacts Probe(Device device)
    {
        using var scope = torch.NewDisposeScope();
        const int n = 512;
        var a = torch.ones(n, n, device: device);
        var b = torch.full(n, n, 2.0f, device: device);
        bool correct = a.matmul(b).mean().item<float>() == 2.0f * n;
        double best = double.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            using var product = a.matmul(b);
            _ = product[0, 0].item<float>(); // forces completion on asynchronous devices
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return new TorchFacts(
            typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown",
            torch.__version__,
            device.ToString(),
            torch.get_num_threads(),
            torch.cuda.is_available(),
            2.0 * n * n * n / best / 1e9,
            correct);
    }

    private static string CudaProblem()
    {
        bool cudaBuild = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name?.Contains("cuda", StringComparison.OrdinalIgnoreCase) == true)
            || File.Exists(Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libtorch_cuda.so"));
        if (!cudaBuild)
            return "this build carries the CPU libtorch (build with -p:TorchBackend=cuda on a machine that reaches nuget.org).";
        bool driver = File.Exists("/proc/driver/nvidia/version") || System.Runtime.InteropServices.NativeLibrary.TryLoad("libcuda.so.1", out _);
        return driver
            ? $"the NVIDIA driver is present, but no device is visible (CUDA_VISIBLE_DEVICES='{Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES")}')."
            : "no NVIDIA driver found (libcuda.so.1 does not load; /proc/driver/nvidia/version is absent).";
    }
}
