using SdPipeline.Models.Shared;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The kernels' thread runner: every part runs once, in parallel, a failing part's exception reaches the caller, calls
/// from several threads or from inside a part complete, and a call allocates nothing on the managed heap (the reason it
/// replaced <c>Parallel.For</c>: the garbage raised the VAE encode's peak memory run after run).
/// </summary>
public sealed unsafe class KernelThreadsTests
{
    private struct CountParts(int* counts, int* threadIds) : IPartitionedWork
    {
        public void Run(int part)
        {
            Interlocked.Increment(ref counts[part]);
            threadIds[part] = Environment.CurrentManagedThreadId;
        }
    }

    private struct Failing(int failingPart) : IPartitionedWork
    {
        public void Run(int part)
        {
            if (part == failingPart) throw new InvalidOperationException($"part {part} failed");
        }
    }

    // Each part adds its share of 0…n−1 into its own slot; the parts wait for one another, so they must run at once.
    private struct Rendezvous(long* sums, int* arrived, int parts, long n) : IPartitionedWork
    {
        public void Run(int part)
        {
            Interlocked.Increment(ref *arrived);
            var wait = new SpinWait();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Volatile.Read(ref *arrived) < parts && DateTime.UtcNow < deadline) wait.SpinOnce();
            long first = n * part / parts, end = n * (part + 1) / parts;
            for (long i = first; i < end; i++) sums[part] += i;
        }
    }

    private struct Nested(int* counts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var local = new InnerCount(counts + 4 * part);
            KernelThreads.Run(4, ref local);
        }
    }

    private struct InnerCount(int* counts) : IPartitionedWork
    {
        public void Run(int part) => Interlocked.Increment(ref counts[part]);
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(5)]
    public void Run_Should_RunEveryPartOnce(int parts)
    {
        var counts = stackalloc int[parts];
        var ids = stackalloc int[parts];
        var work = new CountParts(counts, ids);
        KernelThreads.Run(parts, ref work);
        Assert.That(new Span<int>(counts, parts).ToArray(), Is.All.EqualTo(1));
        Assert.That(ids[0], Is.EqualTo(Environment.CurrentManagedThreadId), "part 0 runs on the calling thread");
    }

    [Test]
    public void Run_Should_RunThePartsAtOnce()
    {
        const int parts = 3;
        var sums = stackalloc long[parts];
        int arrived = 0;
        var work = new Rendezvous(sums, &arrived, parts, 1_000_000);
        KernelThreads.Run(parts, ref work);
        Assert.That(sums[0] + sums[1] + sums[2], Is.EqualTo(999_999L * 1_000_000 / 2));
        Assert.That(arrived, Is.EqualTo(parts));
    }

    [TestCase(0)]
    [TestCase(1)]
    public void Run_Should_RethrowAPartsException(int failingPart)
    {
        var work = new Failing(failingPart);
        var error = Assert.Throws<InvalidOperationException>(() => KernelThreads.Run(2, ref work));
        Assert.That(error!.Message, Is.EqualTo($"part {failingPart} failed"));
        // The runner is usable afterwards.
        var counts = stackalloc int[2];
        var ids = stackalloc int[2];
        var next = new CountParts(counts, ids);
        KernelThreads.Run(2, ref next);
        Assert.That(counts[0] + counts[1], Is.EqualTo(2));
    }

    [Test]
    public void Run_Should_CompleteCallsFromInsideAPart()
    {
        var counts = stackalloc int[8];
        var work = new Nested(counts);
        KernelThreads.Run(2, ref work);
        Assert.That(new Span<int>(counts, 8).ToArray(), Is.All.EqualTo(1));
    }

    [Test]
    public void Run_Should_CompleteCallsFromSeveralThreads()
    {
        var totals = new long[4];
        Parallel.For(0, 4, t =>
        {
            var counts = stackalloc int[3];
            var ids = stackalloc int[3];
            for (int call = 0; call < 200; call++)
            {
                counts[0] = counts[1] = counts[2] = 0;
                var work = new CountParts(counts, ids);
                KernelThreads.Run(3, ref work);
                totals[t] += counts[0] + counts[1] + counts[2];
            }
        });
        Assert.That(totals, Is.All.EqualTo(600));
    }

    [Test]
    public void Run_Should_AllocateNothingOnTheCallingThread()
    {
        var counts = stackalloc int[2];
        var ids = stackalloc int[2];
        var work = new CountParts(counts, ids);
        for (int call = 0; call < 100; call++) KernelThreads.Run(2, ref work);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int call = 0; call < 1000; call++) KernelThreads.Run(2, ref work);
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }
}
