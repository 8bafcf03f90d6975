using System.Diagnostics;
using System.Globalization;
using TorchSharp;

namespace SdPipeline.Runtime;

/// <summary>
/// Peak memory of the device a run uses: on the CPU the process's peak resident set (VmHWM); on CUDA the
/// largest use nvidia-smi has reported for this process when sampled (TorchSharp exposes no allocator
/// statistics), so a CUDA figure is a sampled peak, not an exact one.
/// </summary>
public sealed class DeviceMemory(torch.Device device)
{
    private long _cudaPeak;

    /// <summary>The peak so far, in bytes; null when it cannot be read.</summary>
    public long? PeakBytes()
    {
        if (device.type != DeviceType.CUDA) return ProcessMemory.PeakResidentBytes();
        long? now = CudaUsedByThisProcess();
        if (now is { } used) _cudaPeak = Math.Max(_cudaPeak, used);
        return _cudaPeak > 0 ? _cudaPeak : null;
    }

    private static long? CudaUsedByThisProcess()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("nvidia-smi", "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (process is null) return null;
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit(5000);
            foreach (string line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(',', StringSplitOptions.TrimEntries);
                if (parts.Length == 2 && parts[0] == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)
                    && long.TryParse(parts[1], CultureInfo.InvariantCulture, out long mib))
                    return mib << 20;
            }
            return null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
