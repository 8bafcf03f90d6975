namespace SdPipeline.Files;

/// <summary>
/// Tells a full disk (or an exhausted quota) from other I/O errors: trying again cannot help, and the fix is the user's
/// (free space, or another disk), so it is reported as such instead of retried or shown as a crash.
/// </summary>
public static class DiskFull
{
    /// <summary>
    /// Whether <paramref name="error"/> is ENOSPC or EDQUOT: on Unix .NET gives the errno as HResult (28 and 122 on Linux,
    /// 28 and 69 on macOS and the BSDs); on Windows ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL.
    /// </summary>
    public static bool Is(Exception error)
    {
        if (error is not IOException io) return false;
        if (OperatingSystem.IsWindows()) return (io.HResult & 0xFFFF) is 112 or 39;
        return io.HResult == 28 || io.HResult == (OperatingSystem.IsLinux() ? 122 : 69);
    }

    /// <summary>What to tell the user, after the error's own message (which names the file).</summary>
    public const string Advice = "the disk is full: free space on it, or point the store (--artifacts) or the Hub cache (HF_HOME) at another disk, " +
        "and run again; finished artifacts are kept, and the interrupted work resumes";
}
