using System.Text;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Weights;

/// <summary>Files built by hand to break one rule of the safetensors format each: every one is refused by name.</summary>
public sealed class HostileSafeTensorsTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown() => _temp.Dispose();

    /// <summary>Writes an 8-byte length, <paramref name="header"/> and <paramref name="dataBytes"/> zero bytes.</summary>
    private string Write(string header, long dataBytes, string name = "hostile.safetensors")
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        using var stream = File.Create(_temp.File(name));
        stream.Write(BitConverter.GetBytes((long)json.Length));
        stream.Write(json);
        stream.Write(new byte[dataBytes]);
        return _temp.File(name);
    }

    private static string OpenError(string path) =>
        Assert.Throws<WeightsException>(() => SafeTensorsFile.Open(path).Dispose())!.Message;

    [Test]
    public void Open_Should_Accept_When_TensorsTileTheDataInAnyHeaderOrder()
    {
        // The format sorts by offset, not by key: the second key may hold the first bytes.
        string path = Write("""{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[0],"data_offsets":[8,8]},"c":{"dtype":"F16","shape":[3],"data_offsets":[8,14]}}""", 14);

        using var file = SafeTensorsFile.Open(path);

        Assert.That(file.Entries.Select(e => e.Name), Is.EqualTo(new[] { "b", "a", "c" }));
        Assert.That(file.Entry("c").Offset - file.Entry("b").Offset, Is.EqualTo(8));
    }

    [Test]
    public void Open_Should_Refuse_When_BeginOffsetIsNegative()
    {
        string path = Write("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[-16,0]}}""", 16);

        Assert.That(OpenError(path), Does.Contain("hostile.safetensors").And.Contain("'w'").And.Contain("begin <= end"));
    }

    [Test]
    public void Open_Should_Refuse_When_EndIsBeforeBegin()
    {
        string path = Write("""{"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}}""", 8);

        Assert.That(OpenError(path), Does.Contain("'w'").And.Contain("[8, 0]"));
    }

    [Test]
    public void Open_Should_Refuse_When_ShapeProductOverflows()
    {
        // 2^62 × 4 elements × 4 bytes wraps to 0 in 64-bit arithmetic, which matched the empty data section before.
        string path = Write("""{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}""", 0);

        Assert.That(OpenError(path), Does.Contain("'w'").And.Contain("overflows"));
    }

    [Test]
    public void Open_Should_Refuse_When_ShapeHasANegativeSize()
    {
        string path = Write("""{"w":{"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]}}""", 16);

        Assert.That(OpenError(path), Does.Contain("'w'").And.Contain("negative"));
    }

    [Test]
    public void Open_Should_Refuse_When_TensorsOverlap()
    {
        string path = Write("""{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}""", 16);

        Assert.That(OpenError(path), Does.Contain("'b'").And.Contain("overlapping"));
    }

    [Test]
    public void Open_Should_Refuse_When_TensorsLeaveAGap()
    {
        string path = Write("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12);

        Assert.That(OpenError(path), Does.Contain("'b'").And.Contain("gap"));
    }

    [Test]
    public void Open_Should_Refuse_When_BytesFollowTheLastTensor()
    {
        string path = Write("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4 + 1000);

        Assert.That(OpenError(path), Does.Contain("1000 bytes after its last tensor"));
    }

    [Test]
    public void Open_Should_Refuse_When_ByteCountDisagreesWithShape()
    {
        string path = Write("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}""", 16);

        Assert.That(OpenError(path), Does.Contain("'a'").And.Contain("claims 16 bytes").And.Contain("12 bytes"));
    }

    [TestCase("""{"a":[1,2,3]}""", "'a' is described by a Array")]
    [TestCase("""{"a":{"dtype":"F32","shape":"big","data_offsets":[0,4]}}""", "'a' has no 'shape' list of integers")]
    [TestCase("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", "3 data_offsets")]
    [TestCase("""{"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}""", "'a' has no string 'dtype'")]
    [TestCase("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999999]}}""", "outside the 64-bit range")]
    [TestCase("""{"__metadata__":"pt","a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "'__metadata__' is a String")]
    [TestCase("""{"__metadata__":{"format":{"x":1}},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "'format' is a Object")]
    [TestCase("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "Property with the name 'a' already exists")]
    [TestCase("""  {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "does not start with '{'")]
    public void Open_Should_NameTheProblem_When_HeaderIsMalformed(string header, string expected)
    {
        string path = Write(header, 4);

        Assert.That(OpenError(path), Does.Contain("hostile.safetensors").And.Contain(expected));
    }

    [Test]
    public void Open_Should_Refuse_When_HeaderLengthIsOverTheFormatLimit()
    {
        // 100 MiB: over the format's 100,000,000-byte limit, so refused before any of it is parsed.
        using (var stream = File.Create(_temp.File("huge.safetensors")))
        {
            stream.Write(BitConverter.GetBytes(100L * 1024 * 1024));
            stream.SetLength(8 + 100L * 1024 * 1024 + 8);
        }

        Assert.That(OpenError(_temp.File("huge.safetensors")), Does.Contain("huge.safetensors").And.Contain("outside 1..100000000"));
    }

    [Test]
    public void Open_Should_LeaveTheFileDeletable_When_ItIsRefused()
    {
        string path = Write("""{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}""", 16);
        OpenError(path);

        File.Delete(path);

        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void LoraConvert_Should_Exit2NamingThePath_When_TheInputDoesNotExist()
    {
        var result = CliRunner.Sdpipe(_temp.Path, null, "lora", "convert", "missing.safetensors", _temp.File("out.safetensors"), "--to", "diffusers");

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("'missing.safetensors' not found"));
    }

    [Test]
    public void LoraConvert_Should_Exit1NamingTheFile_When_TheLoraIsHostile()
    {
        string path = Write("""{"lora_unet_x.lora_down.weight":{"dtype":"F32","shape":[4],"data_offsets":[-4096,-4080]}}""", 16, "stranger.safetensors");

        var result = CliRunner.Sdpipe(_temp.Path, null, "lora", "convert", path, _temp.File("out.safetensors"), "--to", "diffusers");

        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Error, Does.Contain("stranger.safetensors").And.Contain("begin <= end"));
        Assert.That(result.Error, Does.Not.Contain("   at "), "an expected failure prints no stack trace");
        Assert.That(File.Exists(_temp.File("out.safetensors")), Is.False);
    }
}
