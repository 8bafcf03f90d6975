using System.Runtime.InteropServices;
using SdPipeline.Runtime;

namespace SdPipeline.Tests.Runtime;

public sealed class ProcessMemoryTests
{
    private const long MiB = 1L << 20;

    [Test]
    public void PageFaults_Should_AddMinorAndMajor_When_TheCommandNameHoldsSpacesAndParentheses()
    {
        // Given a /proc/PID/stat line whose command name would shift the fields of a naive split
        const string stat = "4242 (dotnet (test) host) S 1 4242 4242 0 -1 4194560 5000 12 7 0 120 30 0 0 20 0 9 0 100 1000 200";

        // When its page faults are read
        long? faults = ProcessMemory.PageFaults(stat);

        // Then they are minflt + majflt (fields 10 and 12), not the children's (11)
        Assert.That(faults, Is.EqualTo(5007));
    }

    [Test]
    public void PageFaults_Should_BeNull_When_TheLineIsCutShort()
    {
        Assert.That(ProcessMemory.PageFaults("4242 (dotnet) S 1 4242"), Is.Null);
        Assert.That(ProcessMemory.PageFaults("no command name"), Is.Null);
    }

    [Test]
    public unsafe void PageFaults_Should_Count_TheFirstTouchOfFreshMemory()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("reads /proc/self/stat");

        // Given 64 MiB freshly mapped and not yet touched (mapped here, not allocated: an allocator may hand out pages
        // it has touched before)
        byte* block = (byte*)mmap(0, (nuint)(64 * MiB), ProtReadWrite, MapPrivateAnonymous, -1, 0);
        Assert.That((nint)block, Is.Not.EqualTo(-1), "mmap failed");
        try
        {
            long before = ProcessMemory.PageFaults()!.Value;

            // When every 4 KiB page of it is written once
            for (long offset = 0; offset < 64 * MiB; offset += 4096) block[offset] = 1;
            long after = ProcessMemory.PageFaults()!.Value;

            // Then the count grew by at least one fault per 2 MiB (where the kernel maps huge pages) and at most by a
            // fault per page plus the runtime's own
            Assert.That(after - before, Is.InRange(32, 64 * MiB / 4096 + 4096));
        }
        finally
        {
            munmap((nint)block, (nuint)(64 * MiB));
        }
    }

    private const int ProtReadWrite = 0x1 | 0x2;
    private const int MapPrivateAnonymous = 0x02 | 0x20;

    [DllImport("libc", SetLastError = true)]
    private static extern nint mmap(nint address, nuint length, int protection, int flags, int fd, nint offset);

    [DllImport("libc", SetLastError = true)]
    private static extern int munmap(nint address, nuint length);
}
