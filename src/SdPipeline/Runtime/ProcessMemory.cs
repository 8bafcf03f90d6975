using System.Diagnostics;

namespace SdPipeline.Runtime;

/// <summary>
/// The process's resident memory, from <c>/proc/self/status</c> (<c>VmRSS</c>, its high-water mark <c>VmHWM</c>, and the anonymous part),
/// with .NET's process counters as the fallback elsewhere.
/// </summary>
public static class ProcessMemory
{
    private const string Status = "/proc/self/status";
    private const string ClearRefs = "/proc/self/clear_refs";
    private const string StatFile = "/proc/self/stat";

    /// <summary>Peak resident set size in bytes since the process started or since the last successful <see cref="TryResetPeak"/>.</summary>
    public static long PeakResidentBytes() => ReadStatusKilobytes("VmHWM:"u8) is long kb ? kb * 1024 : Process.GetCurrentProcess().PeakWorkingSet64;

    /// <summary>Current resident set size in bytes.</summary>
    public static long ResidentBytes() => ReadStatusKilobytes("VmRSS:"u8) is long kb ? kb * 1024 : Process.GetCurrentProcess().WorkingSet64;

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

    /// <summary>
    /// Current anonymous resident memory in bytes (<c>RssAnon</c> + <c>RssShmem</c>: what the process allocated, without
    /// the libraries' file pages; see <see cref="AnonymousMemoryPeak"/>); null where <c>/proc/self/status</c> does not give it.
    /// </summary>
    public static long? AnonymousBytes() => File.Exists(Status) ? AnonymousBytes(File.ReadAllBytes(Status)) : null;

    /// <summary><see cref="AnonymousBytes()"/> from the text of a <c>/proc/PID/status</c> file.</summary>
    internal static long? AnonymousBytes(ReadOnlySpan<byte> status) =>
        StatusKilobytes(status, "RssAnon:"u8) is long anonymous && StatusKilobytes(status, "RssShmem:"u8) is long shared ? (anonymous + shared) * 1024 : null;

    /// <summary>
    /// Page faults since the process started (minor and major, from <c>/proc/self/stat</c>); null where that file does not
    /// exist. Each fault is a page touched for the first time since it was mapped: on a VM whose host backs memory lazily,
    /// that is where a first training step's extra seconds go (docs/performance.md).
    /// </summary>
    public static long? PageFaults() => File.Exists(StatFile) ? PageFaults(File.ReadAllText(StatFile)) : null;

    /// <summary><see cref="PageFaults()"/> from the text of a <c>/proc/PID/stat</c> file.</summary>
    internal static long? PageFaults(string stat)
    {
        // Fields after the command name, which is in parentheses and may itself hold spaces and parentheses: state (3),
        // ppid, pgrp, session, tty_nr, tpgid, flags, minflt (10), cminflt, majflt (12).
        int end = stat.LastIndexOf(')');
        if (end < 0) return null;
        var fields = stat[(end + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length > 9 && long.TryParse(fields[7], out long minor) && long.TryParse(fields[9], out long major) ? minor + major : null;
    }

    private static long? ReadStatusKilobytes(ReadOnlySpan<byte> key) => File.Exists(Status) ? StatusKilobytes(File.ReadAllBytes(Status), key) : null;

    // The value of a "Key:\t  123 kB" line of /proc/PID/status, allocating nothing (the sampler reads it every millisecond).
    private static long? StatusKilobytes(ReadOnlySpan<byte> status, ReadOnlySpan<byte> key)
    {
        int at = status.IndexOf(key);
        if (at < 0) return null;
        long value = 0;
        bool digits = false;
        foreach (byte b in status[(at + key.Length)..])
        {
            if (b is >= (byte)'0' and <= (byte)'9')
            {
                value = value * 10 + (b - '0');
                digits = true;
            }
            else if (digits || b == '\n') break;
        }
        return digits ? value : null;
    }
}
