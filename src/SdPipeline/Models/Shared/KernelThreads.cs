using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace SdPipeline.Models.Shared;

/// <summary>One call's work split into parts, each run by <see cref="Run"/> on its own thread.</summary>
internal interface IPartitionedWork
{
    void Run(int part);
}

/// <summary>
/// Runs the project's CPU kernels' parts on the calling thread and on persistent worker threads, allocating nothing per
/// call. <c>Parallel.For</c> allocated its tasks, closure and delegate on every call — about 1 MiB over one VAE encode,
/// whose Winograd convolutions make ~65 such calls a layer — and the .NET heap grew by that garbage between collections
/// (a gen0 budget sized from the last-level cache), which raised the encode's peak RSS run after run (docs/performance.md).
/// </summary>
internal static unsafe class KernelThreads
{
    private static readonly Lock Gate = new();
    private static readonly CountdownEvent Finished = new(1);
    private static Worker[] s_workers = [];
    private static delegate*<void*, int, void> s_body;
    private static void* s_work;
    private static ExceptionDispatchInfo? s_failure;
    [ThreadStatic] private static bool t_running;

    /// <summary>Whether the current thread is running a part of a <see cref="Run"/> call (its own or a worker's).</summary>
    public static bool InsidePart => t_running;

    /// <summary>
    /// Calls <c>work.Run(part)</c> for every part in [0, <paramref name="parts"/>), in parallel, and returns when all have
    /// returned; an exception from a part is rethrown here. <paramref name="work"/> must be a local of the caller
    /// (its address is handed to the workers). A call made while another thread's call runs, or from inside a part,
    /// runs its parts one after another on the calling thread.
    /// </summary>
    public static void Run<TWork>(int parts, ref TWork work) where TWork : unmanaged, IPartitionedWork
    {
        if (parts <= 1 || t_running || !Gate.TryEnter())
        {
            for (int part = 0; part < parts; part++) work.Run(part);
            return;
        }
        t_running = true;
        try
        {
            EnsureWorkers(parts - 1);
            s_body = &RunPart<TWork>;
            s_work = Unsafe.AsPointer(ref work);
            s_failure = null;
            Finished.Reset(parts - 1);
            for (int w = 0; w < parts - 1; w++) s_workers[w].Start(w + 1);
            try { work.Run(0); }
            finally { AwaitWorkers(); }
            s_failure?.Throw();
        }
        finally
        {
            s_body = null;
            s_work = null;
            t_running = false;
            Gate.Exit();
        }
    }

    // The calling thread spins for a while before it blocks: its core would otherwise halt, and on a VM both halting and
    // waking a vCPU cost tens of microseconds. In the SD 1.5 training step on an AMD EPYC Zen 4 (a Firecracker VM) the
    // step took 0.988x the time with this spin, faster in 11 of 15 pairs of steps alternated in one process; spinning
    // the worker before it waits for the next part gained nothing there (docs/performance.md, twenty-third session).
    private static void AwaitWorkers()
    {
        long until = Stopwatch.GetTimestamp() + SpinTicks;
        while (!Finished.IsSet && Stopwatch.GetTimestamp() < until) Thread.SpinWait(8);
        Finished.Wait();
    }

    private static readonly long SpinTicks = Stopwatch.Frequency * 300 / 1_000_000;

    private static void RunPart<TWork>(void* work, int part) where TWork : unmanaged, IPartitionedWork => ((TWork*)work)->Run(part);

    private static void EnsureWorkers(int count)
    {
        if (s_workers.Length >= count) return;
        var workers = new Worker[count];
        s_workers.CopyTo(workers, 0);
        for (int w = s_workers.Length; w < count; w++) workers[w] = new Worker(w);
        s_workers = workers;
    }

    private sealed class Worker
    {
        private readonly ManualResetEventSlim _started = new(false);
        private int _part;

        public Worker(int index) =>
            new Thread(Loop) { IsBackground = true, Name = $"sdpipe kernel {index + 1}" }.Start();

        public void Start(int part)
        {
            _part = part;
            _started.Set();
        }

        private void Loop()
        {
            t_running = true;
            while (true)
            {
                _started.Wait();
                _started.Reset();
                try { s_body(s_work, _part); }
                catch (Exception e) { Interlocked.CompareExchange(ref s_failure, ExceptionDispatchInfo.Capture(e), null); }
                finally { Finished.Signal(); }
            }
        }
    }
}
