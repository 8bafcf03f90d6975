namespace SdPipeline.Runtime;

/// <summary>Memory figures of this process, from <c>/proc/self/status</c> (Linux); null elsewhere.</summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set size in bytes (VmHWM): what the benchmarks and manifests report as peak memory on the CPU.</summary>
    public static long? PeakResidentBytes() => Read("VmHWM:");

    /// <summary>Current resident set size in bytes (VmRSS).</summary>
    public static long? ResidentBytes() => Read("VmRSS:");

    private static long? Read(string field)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return null;
        foreach (string line in File.ReadLines(status))
        {
            if (!line.StartsWith(field, StringComparison.Ordinal)) continue;
            var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        }
        return null;
    }
}
