using System.Runtime.InteropServices;

namespace SdPipeline.Runtime;

/// <summary>
/// Process-wide settings of the native libraries under libtorch on Linux, measured on the SD 1.5 training step
/// (docs/performance.md). Apply them first thing in <c>Main</c>: OpenMP reads its variables once, when libtorch loads
/// it. A variable the user has set already is left as it is.
/// </summary>
/// <remarks>
/// <c>OMP_WAIT_POLICY=PASSIVE</c>: OpenMP threads that wait for work sleep instead of spinning. A training step is
/// thousands of short parallel regions; with libgomp's default spin, a thread burns its time slice at every barrier,
/// and when the cores are shared (other processes, or more threads than cores) the thread it waits for is the one
/// descheduled. In the profile of the step on this 2-core machine shared with other work, half of the samples were
/// libgomp threads spinning; passive waiting took the step from 28× to 11× the matmul measured beside it. Set
/// <c>OMP_WAIT_POLICY=ACTIVE</c> to spin on a machine with idle cores to spare.
/// </remarks>
public static class NativeRuntimeSettings
{
    /// <summary>The variables <see cref="Apply"/> sets when they are not set already.</summary>
    public static IReadOnlyDictionary<string, string> Defaults { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["OMP_WAIT_POLICY"] = "PASSIVE",
    };

    /// <summary>Whether <see cref="Apply"/> has run in this process.</summary>
    public static bool Applied { get; private set; }

    /// <summary>Applies the settings (once; a no-op outside Linux).</summary>
    public static void Apply()
    {
        if (Applied || !OperatingSystem.IsLinux()) return;
        Applied = true;
        try
        {
            // The native environment: .NET's Environment.SetEnvironmentVariable does not reach getenv on Unix.
            foreach (var (name, value) in Defaults) _ = setenv(name, value, 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc to call: libgomp keeps its defaults.
        }
    }

    [DllImport("libc")]
    private static extern int setenv(string name, string value, int overwrite);
}
