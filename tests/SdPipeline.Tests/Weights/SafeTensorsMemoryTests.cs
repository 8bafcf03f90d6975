using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Weights;

/// <summary>
/// Loading weights must not count them twice in the process's memory: a full-size SDXL UNet (9.6 GiB) otherwise peaks
/// at the weights plus the mapped file until the file is closed.
/// </summary>
public sealed class SafeTensorsMemoryTests
{
    [Test]
    public void Read_Should_LeaveTheFilesPagesOutOfTheProcess_When_TensorsAreCopiedOutWhileTheFileIsOpen()
    {
        Assume.That(OperatingSystem.IsLinux(), "reads /proc/self/status");
        // Given a 64 MiB safetensors file (16 tensors of 4 MiB), already in the page cache
        using var temp = new TempFolder();
        string path = temp.File("big.safetensors");
        SafeTensorsWriter.Write(path, Enumerable.Range(0, 16).ToDictionary(i => $"w{i}", i => torch.full([1 << 20], (float)i)));
        _ = File.ReadAllBytes(path);

        // When every tensor is read and copied into a model's tensor, with the file still open
        using var file = SafeTensorsFile.Open(path);
        long before = MappedFileKilobytes();
        var read = file.ReadAll();
        using var destination = torch.empty([1 << 20]);
        file.CopyInto("w3", destination);
        long grown = MappedFileKilobytes() - before;

        // Then the tensors are right, and the mapping's pages were dropped as each was copied (64 MiB if kept)
        Assert.That(read["w15"][0].item<float>(), Is.EqualTo(15f));
        Assert.That(destination[7].item<float>(), Is.EqualTo(3f));
        Assert.That(grown, Is.LessThan(8 * 1024), $"file-backed resident memory grew by {grown} KiB while reading 64 MiB");
        foreach (var tensor in read.Values) tensor.Dispose();
    }

    private static long MappedFileKilobytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("RssFile:", StringComparison.Ordinal))
                return long.Parse(line["RssFile:".Length..].Trim().Split(' ')[0]);
        Assert.Inconclusive("no RssFile line in /proc/self/status");
        return 0;
    }
}
