using System.Diagnostics;
using System.Globalization;

namespace SdPipeline.Training;

/// <summary>How much memory the device offers a run, as the pre-flight sees it.</summary>
public static class AvailableMemory
{
    /// <summary>
    /// Bytes available: <paramref name="limitGb"/> when positive; else, on the CPU, MemAvailable from
    /// /proc/meminfo; on CUDA, free memory from nvidia-smi. Null when it cannot be told.
    /// </summary>
    public static long? Bytes(double limitGb, bool cuda)
    {
        if (limitGb > 0) return (long)(limitGb * (1L << 30));
        return cuda ? CudaFree() : CpuAvailable();
    }

    private static long? CpuAvailable()
    {
        const string meminfo = "/proc/meminfo";
        if (!File.Exists(meminfo)) return null;
        var line = File.ReadLines(meminfo).FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
        return line is null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private static long? CudaFree()
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("nvidia-smi", "--query-gpu=memory.free --format=csv,noheader,nounits")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (process is null) return null;
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit(5000);
            string? first = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            return first is not null && long.TryParse(first.Trim(), CultureInfo.InvariantCulture, out long mib) ? mib << 20 : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no nvidia-smi
        }
    }
}
