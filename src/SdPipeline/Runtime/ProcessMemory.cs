using System.Diagnostics;

namespace SdPipeline.Runtime;

/// <summary>
/// The process's resident memory, from <c>/proc/self/status</c> (<c>VmRSS</c>, and its high-water mark <c>VmHWM</c>),
/// with .NET's process counters as the fallback elsewhere.
/// </summary>
public static class ProcessMemory
{
    private const string Status = "/proc/self/status";
    private const string ClearRefs = "/proc/self/clear_refs";

    /// <summary>Peak resident set size in bytes since the process started or since the last successful <see cref="TryResetPeak"/>.</summary>
    public static long PeakResidentBytes() => ReadStatusKilobytes("VmHWM:") is long kb ? kb * 1024 : Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>Current resident set size in bytes.</summary>
    public static long ResidentBytes() => ReadStatusKilobytes("VmRSS:") is long kb ? kb * 1024 : Process.GetCurrentProcess().WorkingSet64;

    /// <summary>
    /// Sets the peak back to the current resident size (Linux ≥ 4.0: writing 5 to <c>/proc/self/clear_refs</c>), so
    /// that each benchmark case reports its own peak. False where that is not possible; the peak is then the process's.
    /// </summary>
    public static bool TryResetPeak()
    {
        try
        {
            if (!File.Exists(ClearRefs)) return false;
            File.WriteAllText(ClearRefs, "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long? ReadStatusKilobytes(string key)
    {
        if (!File.Exists(Status)) return null;
        foreach (string line in File.ReadLines(Status))
        {
            if (!line.StartsWith(key, StringComparison.Ordinal)) continue;
            // "VmHWM:	  793116 kB"
            string value = line[key.Length..].Trim();
            int space = value.IndexOf(' ');
            return long.TryParse(space < 0 ? value : value[..space], out long kb) ? kb : null;
        }
        return null;
    }
}
