using SdPipeline.Pipeline;

namespace SdPipeline.Tests.Pipeline;

/// <summary>Sizes for <c>sdpipe gc --max-size</c>, read as df -h and du read them.</summary>
public sealed class ByteSizeTests
{
    [TestCase("1048576", 1048576L)]
    [TestCase("512B", 512L)]
    [TestCase("1K", 1024L)]
    [TestCase("50G", 50L * 1024 * 1024 * 1024)]
    [TestCase("50g", 50L * 1024 * 1024 * 1024)]
    [TestCase("50GiB", 50L * 1024 * 1024 * 1024)]
    [TestCase("50GB", 50_000_000_000L)]
    [TestCase("1.5T", 1649267441664L)]
    [TestCase("500MB", 500_000_000L)]
    public void Parse_Should_ReadBinaryAndDecimalUnits(string text, long bytes) =>
        Assert.That(ByteSize.Parse(text), Is.EqualTo(bytes));

    [TestCase("")]
    [TestCase("G")]
    [TestCase("50X")]
    [TestCase("-5G")]
    [TestCase("50 gigabytes")]
    public void Parse_Should_RejectWithTheAcceptedForms_When_NotASize(string text)
    {
        var error = Assert.Throws<FormatException>(() => ByteSize.Parse(text))!;
        Assert.That(error.Message, Does.Contain("50G"));
    }
}
