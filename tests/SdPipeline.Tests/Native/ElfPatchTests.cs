using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Native;

/// <summary>The GLIBCXX_3.4.32 fix the build applies to libLibTorchSharp.so (see build/Native.targets).</summary>
public sealed class ElfPatchTests
{
    private const string Version = "GLIBCXX_3.4.32";

    private static string OutputCopy => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    private static string PackageOriginal =>
        Path.Combine(Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages ? packages
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"),
            "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    [Test]
    public void TestOutputCopy_Should_RequireTheVersionWeakly()
    {
        Assert.That(ElfVersionNeedPatcher.Inspect(OutputCopy, Version), Is.EqualTo(ElfVersionNeedPatcher.Result.AlreadyWeak));
    }

    [Test]
    public void Patch_Should_ChangeOneFlag_And_BeIdempotent_And_LeaveThePackageAlone()
    {
        // Given a copy of the package's library, which requires the version strictly
        Assert.That(ElfVersionNeedPatcher.Inspect(PackageOriginal, Version), Is.EqualTo(ElfVersionNeedPatcher.Result.Patched),
            "the NuGet cache's copy must stay unpatched (the build patches output copies only)");
        using var temp = new TempFolder();
        string copy = temp.File("libLibTorchSharp.so");
        File.Copy(PackageOriginal, copy);
        byte[] before = File.ReadAllBytes(copy);

        // When it is patched twice
        var first = ElfVersionNeedPatcher.MarkWeak(copy, Version);
        byte[] once = File.ReadAllBytes(copy);
        var second = ElfVersionNeedPatcher.MarkWeak(copy, Version);

        // Then the first patch flips exactly one byte and the second changes nothing
        Assert.That(first, Is.EqualTo(ElfVersionNeedPatcher.Result.Patched));
        Assert.That(second, Is.EqualTo(ElfVersionNeedPatcher.Result.AlreadyWeak));
        Assert.That(once, Has.Length.EqualTo(before.Length));
        Assert.That(Enumerable.Range(0, before.Length).Count(i => before[i] != once[i]), Is.EqualTo(1));
        Assert.That(File.ReadAllBytes(copy), Is.EqualTo(once));
    }

    [Test]
    public void Inspect_Should_ReportNotRequired_When_VersionIsAbsent()
    {
        Assert.That(ElfVersionNeedPatcher.Inspect(OutputCopy, "GLIBCXX_9.9.99"), Is.EqualTo(ElfVersionNeedPatcher.Result.VersionNotRequired));
    }
}
