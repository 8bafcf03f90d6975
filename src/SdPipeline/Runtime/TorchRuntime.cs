using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
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
                // The config asks for a device this machine lacks, and the fix is a setting: exit code 2, like a run
                // the memory pre-flight refuses.
                : throw new Config.ConfigException(
                    "runtime.device is cuda, but CUDA is not available: " + ExplainCuda(DiagnoseCuda()) +
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

    /// <summary>
    /// What <c>--device cuda</c> looked for, and the first thing missing: a CUDA build of libtorch, the NVIDIA
    /// driver, a device node, a device the visibility variables leave visible. Read from files and the
    /// dynamic loader only, so it works where libtorch cannot use CUDA.
    /// </summary>
    internal static CudaDiagnosis DiagnoseCuda()
    {
        string nativeDir = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native");
        bool cudaBuild = File.Exists(Path.Combine(nativeDir, "libtorch_cuda.so")) || File.Exists(Path.Combine(AppContext.BaseDirectory, "libtorch_cuda.so"));
        string? driverVersion = null;
        const string driverFile = "/proc/driver/nvidia/version";
        if (File.Exists(driverFile))
        {
            var match = Regex.Match(File.ReadAllText(driverFile), @"Kernel Module\s+(?:for \S+\s+)?([0-9][0-9.]*)");
            driverVersion = match.Success ? match.Groups[1].Value : "unknown version";
        }
        bool driverLibrary = NativeLibrary.TryLoad("libcuda.so.1", out var handle);
        if (driverLibrary) NativeLibrary.Free(handle);
        var nodes = Directory.Exists("/dev")
            ? Directory.EnumerateFiles("/dev", "nvidia*").Where(n => Regex.IsMatch(Path.GetFileName(n), @"^nvidia\d+$")).Order(StringComparer.Ordinal).ToList()
            : [];
        return new CudaDiagnosis(cudaBuild, nativeDir, driverVersion, driverLibrary, nodes,
            Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES"), Environment.GetEnvironmentVariable("NVIDIA_VISIBLE_DEVICES"));
    }

    /// <summary>The sentence <c>--device cuda</c> fails with: the first missing piece and its fix, then everything it looked for.</summary>
    internal static string ExplainCuda(CudaDiagnosis d)
    {
        string driver = d.DriverVersion is not null
            ? $"NVIDIA driver {d.DriverVersion} (/proc/driver/nvidia/version)"
            : d.DriverLibraryLoads ? "NVIDIA driver library libcuda.so.1 (no /proc/driver/nvidia/version)" : "no NVIDIA driver (libcuda.so.1 does not load; /proc/driver/nvidia/version is absent)";
        string devices = d.DeviceNodes.Count > 0 ? string.Join(", ", d.DeviceNodes) : "no /dev/nvidiaN device node";
        string visible = $"CUDA_VISIBLE_DEVICES {(d.CudaVisibleDevices is null ? "unset" : $"'{d.CudaVisibleDevices}'")}" +
            (d.NvidiaVisibleDevices is null ? "" : $", NVIDIA_VISIBLE_DEVICES '{d.NvidiaVisibleDevices}'");
        string lookedFor = $"Looked for: libtorch_cuda.so in {d.NativeDirectory} ({(d.CudaBuild ? "present" : "absent")}); {driver}; device cuda:0 ({devices}; {visible}).";

        return $"{CudaProblem(d)} {lookedFor}";
    }

    private static string CudaProblem(CudaDiagnosis d)
    {
        if (!d.CudaBuild)
            return "this build carries the CPU libtorch: rebuild with ./build.sh --torch-backend=cuda (or dotnet build -p:TorchBackend=cuda) on a machine that reaches nuget.org.";
        if (d.DriverVersion is null && !d.DriverLibraryLoads)
            return "the NVIDIA driver is not installed or not visible here: install it on the host (nvidia-smi must work), and run containers with the NVIDIA container toolkit (--gpus all).";
        if (d.DeviceNodes.Count == 0)
            return "the NVIDIA driver is present but no GPU device node (/dev/nvidia0) is: in a container, start it with --gpus all; on the host, check nvidia-smi.";
        string? visible = d.CudaVisibleDevices?.Trim();
        if (visible is "" or "-1" or "none")
            return $"CUDA_VISIBLE_DEVICES='{d.CudaVisibleDevices}' hides every GPU: unset it, or name a device (0 to {d.DeviceNodes.Count - 1}).";
        if (visible is not null && visible.Split(',').All(x => int.TryParse(x.Trim(), out int index) && index >= d.DeviceNodes.Count))
            return $"CUDA_VISIBLE_DEVICES='{visible}' names no existing GPU (this machine has {d.DeviceNodes.Count}: 0 to {d.DeviceNodes.Count - 1}).";
        return $"the driver and {d.DeviceNodes.Count} GPU(s) are present, but libtorch (CUDA {CudaRuntimeVersion}) cannot use them: the driver may be " +
            $"older than CUDA {CudaRuntimeVersion} needs (525.60.13 at the least, 570 or newer recommended), or the GPU is busy or in a bad state (check nvidia-smi).";
    }

    /// <summary>The CUDA runtime TorchSharp-cuda-linux 0.107 (libtorch 2.10) ships with; the driver must support it.</summary>
    internal const string CudaRuntimeVersion = "12.8";
}
