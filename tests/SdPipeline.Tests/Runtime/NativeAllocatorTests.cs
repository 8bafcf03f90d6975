using SdPipeline.Runtime;

namespace SdPipeline.Tests.Runtime;

/// <summary>The environment <c>sdpipe</c> replaces itself with to run under tcmalloc.</summary>
public sealed class NativeAllocatorTests
{
    private const string Library = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";

    [Test]
    public void ReplacementEnvironment_Should_PreloadTcmallocAndKeepFreedPages_When_NothingIsSet()
    {
        var environment = NativeAllocator.ReplacementEnvironment(new Dictionary<string, string> { ["HOME"] = "/root" }, Library);

        Assert.Multiple(() =>
        {
            Assert.That(environment["LD_PRELOAD"], Is.EqualTo(Library));
            Assert.That(environment["TCMALLOC_RELEASE_RATE"], Is.EqualTo("0"), "freed pages are kept for the next step, not faulted in again");
            Assert.That(environment["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"], Is.EqualTo("1099511627776"));
            Assert.That(environment["HOME"], Is.EqualTo("/root"), "the rest of the environment is passed on");
        });
    }

    [Test]
    public void ReplacementEnvironment_Should_KeepTheUsersSettings_When_TheyAreSet()
    {
        var current = new Dictionary<string, string> { ["LD_PRELOAD"] = "/opt/lib/libtrace.so", ["TCMALLOC_RELEASE_RATE"] = "10" };

        var environment = NativeAllocator.ReplacementEnvironment(current, Library);

        Assert.Multiple(() =>
        {
            Assert.That(environment["LD_PRELOAD"], Is.EqualTo($"{Library}:/opt/lib/libtrace.so"), "tcmalloc first, the user's library kept");
            Assert.That(environment["TCMALLOC_RELEASE_RATE"], Is.EqualTo("10"));
        });
    }
}
