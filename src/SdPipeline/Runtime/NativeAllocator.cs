using System.Runtime.InteropServices;

namespace SdPipeline.Runtime;

/// <summary>
/// Runs the process under tcmalloc when it is installed: on Linux, first thing in <c>Main</c>, the process replaces
/// itself (<c>execve</c>, same PID, arguments and environment) with <c>LD_PRELOAD</c> naming the library, so that
/// libtorch's tensor allocations come from tcmalloc instead of glibc's malloc.
/// </summary>
/// <remarks>
/// Why (docs/performance.md, Intel Xeon family 6 model 207): glibc keeps freed activation blocks in its heaps or, past
/// its mmap threshold, returns them and faults fresh pages in for the next ones (29 M page faults in one UNet benchmark);
/// tcmalloc reuses them from its caches (2 M). The SD 1.5 training step went from 3.28 to 2.60 s and its peak from 13.61
/// to 13.21 GiB; a 512 px sampling step from 5.63 to 4.58 s and 4.20 to 3.84 GiB. The allocator changes no result: both
/// give libtorch the 64-byte alignment it asks for, and the kernels are the same. <c>SDPIPE_ALLOCATOR=system</c> keeps
/// glibc's; the library is looked for only in the system's library folders, never on a path from the environment.
/// </remarks>
public static class NativeAllocator
{
    /// <summary>The variable that chooses: <c>tcmalloc</c> (the default, when installed) or <c>system</c>.</summary>
    public const string Variable = "SDPIPE_ALLOCATOR";

    /// <summary>Debian's and Ubuntu's package (libtcmalloc-minimal4), and Fedora's (gperftools-libs).</summary>
    private static readonly string[] Candidates =
    [
        "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
        "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
        "/usr/lib64/libtcmalloc_minimal.so.4",
        "/usr/lib/libtcmalloc_minimal.so.4",
    ];

    /// <summary>The installed tcmalloc library, or null.</summary>
    public static string? Installed => OperatingSystem.IsLinux() ? Candidates.FirstOrDefault(File.Exists) : null;

    /// <summary>The allocator this process runs on, for <c>sdpipe doctor</c> and the logs.</summary>
    public static string Describe()
    {
        if (InUse() is { } library) return $"tcmalloc ({library})";
        string why = Environment.GetEnvironmentVariable(Variable) == "system" ? $"{Variable}=system"
            : Installed is null ? "tcmalloc is not installed: apt install libtcmalloc-minimal4 makes training and sampling about 20% faster"
            : "tcmalloc is installed but not loaded";
        return $"glibc malloc ({why})";
    }

    /// <summary>The tcmalloc library mapped into this process, or null.</summary>
    public static string? InUse()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/self/maps")) return null;
        return File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault())
            .FirstOrDefault(p => p is not null && p.Contains("libtcmalloc", StringComparison.Ordinal));
    }

    /// <summary>
    /// Replaces the process with itself under tcmalloc, when installed, wanted and not loaded yet; returns (doing
    /// nothing) otherwise, or when the replacement fails.
    /// </summary>
    public static void UseTcmalloc()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(Variable) == "system") return;
        string preload = Environment.GetEnvironmentVariable("LD_PRELOAD") ?? "";
        // Already replaced (or the user preloads an allocator of their own): never loop.
        if (preload.Contains("tcmalloc", StringComparison.Ordinal) || preload.Contains("jemalloc", StringComparison.Ordinal)) return;
        if (Installed is not { } library || Environment.ProcessPath is not { } executable || !File.Exists("/proc/self/cmdline")) return;

        string[] argv = File.ReadAllText("/proc/self/cmdline").Split('\0');
        if (argv.Length > 0 && argv[^1].Length == 0) argv = argv[..^1];
        var current = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "", StringComparer.Ordinal);
        var environment = ReplacementEnvironment(current, library);
        try
        {
            execve(executable, [.. argv, null], [.. environment.Select(e => $"{e.Key}={e.Value}"), null]);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or MarshalDirectiveException)
        {
        }
        // execve returned: it failed, and this process goes on with glibc's allocator.
    }

    /// <summary>
    /// The environment the process is replaced with: <paramref name="current"/>, with <c>LD_PRELOAD</c> naming
    /// <paramref name="library"/> first, and tcmalloc's settings below where <paramref name="current"/> has none.
    /// </summary>
    /// <remarks>
    /// <c>TCMALLOC_RELEASE_RATE=0</c>: tcmalloc keeps the pages of freed blocks rather than handing them back to the
    /// system a little at a time, to fault them in again for the next step's blocks. On an AMD EPYC Zen 4 VM
    /// (docs/performance.md, nineteenth session) the SD 1.5 training step's page faults went from 1.6–6.1 k a step to
    /// 126–2.7 k, its warm-up from 38.0–40.4 s to 30.0–33.5 s (two pairs of processes), with the same peaks (256 px
    /// 13.21–13.23 GiB, 512 px 13.65–13.67, UNet forward 3.66–3.69, VAE 0.72 and 0.85 GiB). A process's resident memory
    /// then stays at its highest point until it exits, which for one run of the pipeline is the peak it reached anyway.
    /// </remarks>
    internal static Dictionary<string, string> ReplacementEnvironment(IReadOnlyDictionary<string, string> current, string library)
    {
        var environment = new Dictionary<string, string>(current, StringComparer.Ordinal);
        string preload = current.GetValueOrDefault("LD_PRELOAD", "");
        environment["LD_PRELOAD"] = preload.Length == 0 ? library : $"{library}:{preload}";
        // tcmalloc reports every allocation over 1 GiB on stderr; a full-size model's buffers are that large by design.
        environment.TryAdd("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", "1099511627776");
        environment.TryAdd("TCMALLOC_RELEASE_RATE", "0");
        return environment;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int execve(
        [MarshalAs(UnmanagedType.LPUTF8Str)] string path,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] argv,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] envp);
}
