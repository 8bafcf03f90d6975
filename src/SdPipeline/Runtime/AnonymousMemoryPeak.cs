using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SdPipeline.Runtime;

/// <summary>
/// The highest anonymous resident memory (<c>RssAnon</c> + <c>RssShmem</c> of <c>/proc/self/status</c>) while it runs,
/// sampled every millisecond on a background thread.
/// </summary>
/// <remarks>
/// Peak RSS (<c>VmHWM</c>) also counts the libraries' file pages, and how many of those are mapped depends on the page
/// cache, not on the program: on Linux 6.18 the same <c>libtorch_cpu.so</c> has 41 MiB of code resident after loading
/// when its pages were read in by page faults and 119 MiB when the file was last written (a fresh build's copy), which
/// the page cache keeps in 2 MiB folios and maps whole. Anonymous memory is what the process allocated — tensors,
/// allocator caches, the runtime's heaps — and what decides whether a run fits, since file pages can be dropped and read
/// again. A peak shorter than a millisecond can be missed.
/// <para>
/// The sampler runs under Linux's <c>SCHED_IDLE</c> policy, so it takes a CPU only when no other thread wants one: a
/// benchmark's threads use every core, and a sampler waking a thousand times a second at ordinary priority preempted
/// them (2 vCPUs, AMD EPYC Zen 4: 3,800–7,500 involuntary switches of the main thread in 10 s against 530 without it),
/// which made the SD 1.5 training step ~4% slower (medians 3.19 / 3.18 / 3.24 s against 2.99 / 3.03 / 3.19 s under
/// <c>SCHED_IDLE</c>, alternating processes). The peaks it records were the same either way (13.09–13.10 GiB), since
/// the cores idle for moments between operations; a <c>SCHED_IDLE</c> thread also keeps a small share of a busy CPU.
/// </para>
/// </remarks>
public sealed class AnonymousMemoryPeak : IDisposable
{
    private const string Status = "/proc/self/status";

    /// <summary>The sampler thread's name (Linux keeps its first 15 characters as the task's <c>comm</c>).</summary>
    internal const string ThreadName = "anonymous memory peak";
    private readonly SafeFileHandle _status;
    private readonly byte[] _buffer;
    private readonly Thread _thread;
    private volatile bool _stopping;
    private long _peak;

    private AnonymousMemoryPeak(SafeFileHandle status, byte[] buffer, long first)
    {
        _status = status;
        _buffer = buffer;
        _peak = first;
        _thread = new Thread(Run) { IsBackground = true, Name = ThreadName };
        _thread.Start();
    }

    /// <summary>Starts sampling; null where <c>/proc/self/status</c> has no <c>RssAnon</c> (not Linux, or Linux before 4.5).</summary>
    public static AnonymousMemoryPeak? Start()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists(Status)) return null;
        var status = File.OpenHandle(Status);
        var buffer = new byte[4096];
        if (Read(status, buffer) is long first) return new AnonymousMemoryPeak(status, buffer, first);
        status.Dispose();
        return null;
    }

    /// <summary>The highest value seen so far, in bytes.</summary>
    public long PeakBytes => Interlocked.Read(ref _peak);

    /// <summary>Stops sampling after a last sample; <see cref="PeakBytes"/> stays readable.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _thread.Join();
        _status.Dispose();
    }

    private void Run()
    {
        // For this thread only (pid 0 is the caller); where the policy is refused, the sampler runs at normal priority.
        int idlePriority = 0;
        _ = sched_setscheduler(0, SchedIdle, ref idlePriority);
        while (!_stopping)
        {
            long now = Sample();
            if (now > _peak) Interlocked.Exchange(ref _peak, now);
            Thread.Sleep(1);
        }
        long last = Sample();
        if (last > _peak) Interlocked.Exchange(ref _peak, last);
    }

    private const int SchedIdle = 5;

    // The struct sched_param argument is one int, which SCHED_IDLE requires to be 0.
    [DllImport("libc")]
    private static extern int sched_setscheduler(int pid, int policy, ref int priority);

    private long Sample() => Read(_status, _buffer) ?? 0;

    // Reads the file from offset 0 into a reused buffer, allocating nothing.
    private static long? Read(SafeFileHandle status, byte[] buffer) => ProcessMemory.AnonymousBytes(buffer.AsSpan(0, RandomAccess.Read(status, buffer, 0)));
}
