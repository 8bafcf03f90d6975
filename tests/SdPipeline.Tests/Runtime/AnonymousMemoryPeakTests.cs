using System.IO.MemoryMappedFiles;
using SdPipeline.Runtime;
using SdPipeline.Tests.Support;
using TorchSharp;

namespace SdPipeline.Tests.Runtime;

public sealed class AnonymousMemoryPeakTests
{
    private const long MiB = 1L << 20;

    [SetUp]
    public void LinuxOnly()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("reads /proc/self/status");
    }

    [Test]
    public void PeakBytes_Should_SeeATensorHeldBriefly_After_ItIsFreed()
    {
        // Given the sampler running
        long before = ProcessMemory.AnonymousBytes()!.Value;
        using var peak = AnonymousMemoryPeak.Start()!;

        // When 256 MiB are allocated, written, held for 50 ms (longer, up to 5 s, until a sample has seen them: the sampler
        // runs under SCHED_IDLE, which a machine busy with other work may leave without a CPU for a while) and freed
        using (var block = torch.ones(64 * MiB))
            for (var clock = System.Diagnostics.Stopwatch.StartNew();
                 clock.ElapsedMilliseconds < 50 || (peak.PeakBytes <= before + 200 * MiB && clock.Elapsed < TimeSpan.FromSeconds(5));)
                Thread.Sleep(10);
        peak.Dispose();

        // Then the peak saw the block, though it is gone
        Assert.That(peak.PeakBytes, Is.GreaterThan(before + 200 * MiB));
        Assert.That(peak.PeakBytes, Is.LessThan(before + 2048 * MiB));
    }

    [Test]
    public void PeakBytes_Should_LeaveOutFilePages_That_ResidentMemoryCounts()
    {
        // Given a 128 MiB file on a disk file system mapped into memory (a tmpfs file's pages are shared memory, which
        // the anonymous figure counts: the system temp folder is tmpfs on some distributions, the test output's is not)
        using var temp = new TempFolder(TestContext.CurrentContext.WorkDirectory);
        if (new DriveInfo(temp.Path).DriveFormat is "tmpfs" or "ramfs") Assert.Ignore($"{temp.Path} is in memory: its pages are not file pages");
        string path = temp.File("pages.bin");
        using (var file = File.Create(path)) file.SetLength(128 * MiB);
        using var mapped = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = mapped.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        long residentBefore = ProcessMemory.ResidentBytes();
        using var peak = AnonymousMemoryPeak.Start()!;
        long anonymousBefore = peak.PeakBytes;

        // When every page of it is read (so it becomes resident, as a library's code does when it runs)
        long sum = 0;
        for (long offset = 0; offset < 128 * MiB; offset += 4096) sum += view.ReadByte(offset);
        long residentAfter = ProcessMemory.ResidentBytes();
        peak.Dispose();

        // Then resident memory grew by the file's pages, and the anonymous peak did not
        Assert.That(sum, Is.Zero);
        Assert.That(residentAfter - residentBefore, Is.GreaterThan(100 * MiB));
        Assert.That(peak.PeakBytes - anonymousBefore, Is.LessThan(32 * MiB));
    }

    [Test]
    public void Sampler_Should_RunUnderSchedIdle_So_ItNeverPreemptsTheMeasuredWork()
    {
        // Given the sampler started
        using var peak = AnonymousMemoryPeak.Start()!;

        // When its thread is found by name (the kernel keeps 15 characters of it) and has set its policy
        int? policy = null;
        for (var clock = System.Diagnostics.Stopwatch.StartNew(); clock.Elapsed < TimeSpan.FromSeconds(5) && policy != 5; Thread.Sleep(10))
            policy = SamplerPolicy();

        // Then it is SCHED_IDLE (5), not the normal policy (0) that preempted a benchmark's threads
        Assert.That(policy, Is.EqualTo(5));
    }

    // Field 41 of /proc/self/task/TID/stat, counted after the parenthesised name (which may hold spaces).
    private static int? SamplerPolicy()
    {
        foreach (string task in Directory.GetDirectories("/proc/self/task"))
        {
            if (File.ReadAllText(Path.Combine(task, "comm")).Trim() != AnonymousMemoryPeak.ThreadName[..15]) continue;
            string stat = File.ReadAllText(Path.Combine(task, "stat"));
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[38], System.Globalization.CultureInfo.InvariantCulture);
        }
        return null;
    }
}
