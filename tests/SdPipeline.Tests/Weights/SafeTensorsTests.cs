using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Weights;

public sealed class SafeTensorsTests
{
    [Test]
    public void WriteThenRead_Should_RoundTripBitExactly_When_DTypesVary()
    {
        // Given tensors of every dtype a checkpoint uses
        using var temp = new TempFolder();
        var tensors = new Dictionary<string, Tensor>
        {
            ["a.f32"] = torch.randn(3, 5),
            ["b.f16"] = torch.randn(7).to(ScalarType.Float16),
            ["c.bf16"] = torch.randn(2, 2, 2).to(ScalarType.BFloat16),
            ["d.i64"] = torch.arange(0, 77, dtype: ScalarType.Int64).reshape(1, 77),
            ["e.scalar"] = torch.tensor(3.5f),
        };

        // When they are written and read back
        SafeTensorsWriter.Write(temp.File("x.safetensors"), tensors);
        using var file = SafeTensorsFile.Open(temp.File("x.safetensors"));
        var read = file.ReadAll();

        // Then every tensor has the same dtype, shape and bytes
        Assert.That(read.Keys, Is.EquivalentTo(tensors.Keys));
        foreach (var (name, tensor) in tensors)
        {
            Assert.That(read[name].dtype, Is.EqualTo(tensor.dtype), name);
            Assert.That(read[name].shape, Is.EqualTo(tensor.shape), name);
            Assert.That(read[name].bytes.ToArray(), Is.EqualTo(tensor.bytes.ToArray()), name);
        }
        Assert.That(file.Metadata["format"], Is.EqualTo("pt"));
    }

    [Test]
    public void Open_Should_ReadTheDiffusersFixture()
    {
        using var file = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "unet", "diffusion_pytorch_model.safetensors"));

        long parameters = file.Entries.Sum(e => e.Shape.Aggregate(1L, (a, b) => a * b));

        Assert.That(parameters, Is.EqualTo(1_427_012), "the fixtures README gives the tiny UNet's parameter count");
        Assert.That(file.Entries.All(e => e.DType == ScalarType.Float32), Is.True);
    }

    [Test]
    public void Open_Should_ReadThroughSymlinks_AsTheHubCacheLaysFilesOut()
    {
        // Given a file in blobs/ and a snapshot linking to it relatively (huggingface_hub's layout), and an absolute link
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("blobs"));
        Directory.CreateDirectory(temp.File(Path.Combine("snapshots", "abc", "unet")));
        SafeTensorsWriter.Write(temp.File(Path.Combine("blobs", "f00d")), new Dictionary<string, Tensor> { ["w"] = torch.arange(6, dtype: ScalarType.Float32) });
        string relative = temp.File(Path.Combine("snapshots", "abc", "unet", "diffusion_pytorch_model.safetensors"));
        File.CreateSymbolicLink(relative, Path.Combine("..", "..", "..", "blobs", "f00d"));
        string absolute = temp.File("absolute.safetensors");
        File.CreateSymbolicLink(absolute, temp.File(Path.Combine("blobs", "f00d")));
        // and a folder linking the snapshot's component folder, as a train artifact's pipeline/ does: the relative link's
        // ../ then climbs from the snapshot, not from the linking folder
        Directory.CreateDirectory(temp.File(Path.Combine("artifact", "pipeline")));
        Directory.CreateSymbolicLink(temp.File(Path.Combine("artifact", "pipeline", "unet")), temp.File(Path.Combine("snapshots", "abc", "unet")));
        string throughFolder = temp.File(Path.Combine("artifact", "pipeline", "unet", "diffusion_pytorch_model.safetensors"));

        // Then each opens as the file itself (a link's own length is that of its target's name)
        foreach (string link in new[] { relative, absolute, throughFolder })
        {
            using var file = SafeTensorsFile.Open(link);
            Assert.That(file.ReadAll()["w"].data<float>().ToArray(), Is.EqualTo(new float[] { 0, 1, 2, 3, 4, 5 }), link);
        }

        // And a link whose target is gone names both
        File.CreateSymbolicLink(temp.File("dangling.safetensors"), temp.File("gone.safetensors"));
        var error = Assert.Throws<WeightsException>(() => SafeTensorsFile.Open(temp.File("dangling.safetensors")))!;
        Assert.That(error.Message, Does.Contain("dangling.safetensors: file not found").And.Contain("gone.safetensors"));
    }

    [Test]
    public void Open_Should_NameTheFile_When_ItIsTruncated()
    {
        using var temp = new TempFolder();
        SafeTensorsWriter.Write(temp.File("full.safetensors"), new Dictionary<string, Tensor> { ["w"] = torch.randn(64, 64) });
        byte[] bytes = File.ReadAllBytes(temp.File("full.safetensors"));
        File.WriteAllBytes(temp.File("cut.safetensors"), bytes[..(bytes.Length - 100)]);

        var error = Assert.Throws<WeightsException>(() => SafeTensorsFile.Open(temp.File("cut.safetensors")))!;

        Assert.That(error.Message, Does.Contain("cut.safetensors").And.Contain("'w'").And.Contain("truncated"));
    }

    [Test]
    public void Open_Should_Refuse_When_FileIsAPickle()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("model.ckpt"), [0x80, 0x02]);

        var error = Assert.Throws<WeightsException>(() => SafeTensorsFile.Open(temp.File("model.ckpt")))!;

        Assert.That(error.Message, Does.Contain("model.ckpt").And.Contain("pickle").And.Contain("safe_serialization=True"));
    }

    [Test]
    public void Open_Should_Fail_When_HeaderIsGarbage()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("bad.safetensors"), [.. BitConverter.GetBytes(4L), .. "nope"u8.ToArray()]);

        var error = Assert.Throws<WeightsException>(() => SafeTensorsFile.Open(temp.File("bad.safetensors")))!;

        Assert.That(error.Message, Does.Contain("bad.safetensors").And.Contain("header"));
    }
}
