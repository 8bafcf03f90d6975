using System.Runtime.InteropServices;

namespace SdPipeline.Runtime;

/// <summary>
/// Process-wide settings of the native libraries under libtorch on Linux, measured on the SD 1.5 training step
/// (docs/performance.md). Apply them first thing in <c>Main</c>: some are read once, when libtorch allocates its first
/// tensor or when its OpenMP runtime loads. A variable the user has set already is left as it is.
/// </summary>
/// <remarks>
/// OpenMP's wait policy: in the profile of the step on this 2-core machine shared with other work, half of the
/// samples were libgomp threads spinning at barriers; passive waiting cut the step from 41 s to 15 s under the same
/// load (docs/performance.md). Set <c>OMP_WAIT_POLICY=ACTIVE</c> to spin on a machine with idle cores to spare.
/// A training step frees and reallocates gigabytes every step (activations, the gradients that
/// <c>zero_grad(set_to_none)</c> drops). With glibc's defaults, blocks above its dynamic mmap threshold and freed
/// memory at the top of the heap go back to the kernel and come back as fresh pages, each one faulted and zeroed:
/// about a fifth of the step's CPU time in the profile. Keeping freed memory in the process, and asking for
/// transparent huge pages for large tensors (libtorch's <c>THP_MEM_ALLOC_ENABLE</c>), removes most of that.
/// </remarks>
public static class NativeRuntimeSettings
{
    // glibc's mallopt parameters (malloc.h).
    private const int MTrimThreshold = -1;
    private const int MTopPad = -2;
    private const int MMmapThreshold = -3;

    // glibc's ceiling for the mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX): larger blocks are always mapped.
    private const int MmapThresholdBytes = 32 << 20;
    private const int TopPadBytes = 256 << 20;

    /// <summary>Whether <see cref="Apply"/> has run in this process.</summary>
    public static bool Applied { get; private set; }

    /// <summary>Applies the settings (once; a no-op outside Linux).</summary>
    public static void Apply()
    {
        if (Applied || !OperatingSystem.IsLinux()) return;
        Applied = true;
        try
        {
            // libtorch aligns tensors of 2 MiB and more to pages and advises huge pages for them.
            _ = setenv("THP_MEM_ALLOC_ENABLE", "1", 0);
            // OpenMP threads that wait for work sleep instead of spinning. A step is thousands of short parallel
            // regions; with libgomp's default spin a thread burns its time slice at every barrier, and when the cores
            // are shared (other processes, or more threads than cores) the thread it waits for is the one descheduled.
            _ = setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
            // glibc reads its MALLOC_*_ variables before Main; an explicit one still wins over these.
            if (Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is null) _ = mallopt(MMmapThreshold, MmapThresholdBytes);
            if (Environment.GetEnvironmentVariable("MALLOC_TRIM_THRESHOLD_") is null) _ = mallopt(MTrimThreshold, int.MaxValue);
            if (Environment.GetEnvironmentVariable("MALLOC_TOP_PAD_") is null) _ = mallopt(MTopPad, TopPadBytes);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: its allocator has its own policy, and these settings do not apply.
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);

    [DllImport("libc")]
    private static extern int mallopt(int parameter, int value);
}
