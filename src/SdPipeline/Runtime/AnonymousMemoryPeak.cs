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
/// again. The sampler costs ~2% of one core (22 ms of CPU a second, waking included, measured on an Intel Xeon), which
/// a benchmark's times carry; a peak shorter than a millisecond can be missed. Sampling every 2 ms would halve the cost
/// but sample more coarsely than the PyTorch peer script (docs/pytorch-peer/sd15_peer.py) samples PyTorch.
/// </remarks>
public sealed class AnonymousMemoryPeak : IDisposable
{
    private const string Status = "/proc/self/status";
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
        _thread = new Thread(Run) { IsBackground = true, Name = "anonymous memory peak", Priority = ThreadPriority.AboveNormal };
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
        while (!_stopping)
        {
            long now = Sample();
            if (now > _peak) Interlocked.Exchange(ref _peak, now);
            Thread.Sleep(1);
        }
        long last = Sample();
        if (last > _peak) Interlocked.Exchange(ref _peak, last);
    }

    private long Sample() => Read(_status, _buffer) ?? 0;

    // Reads the file from offset 0 into a reused buffer, allocating nothing.
    private static long? Read(SafeFileHandle status, byte[] buffer) => ProcessMemory.AnonymousBytes(buffer.AsSpan(0, RandomAccess.Read(status, buffer, 0)));
}
