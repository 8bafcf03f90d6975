using SdPipeline.BaseModel;
using SdPipeline.Pipeline;
using SdPipeline.Sampling;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Tests.BaseModel;

public sealed class BuiltinTinyTests
{
    private static Dictionary<string, string> Hashes(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(folder, f), FileHashCache.HashFile);

    [Test]
    public void Write_Should_BeDeterministicFromTheSeed()
    {
        using var temp = new TempFolder();
        BuiltinTiny.Write(temp.File("a"), seed: 3);
        BuiltinTiny.Write(temp.File("b"), seed: 3);
        BuiltinTiny.Write(temp.File("c"), seed: 4);

        Assert.That(Hashes(temp.File("b")), Is.EqualTo(Hashes(temp.File("a"))));
        Assert.That(Hashes(temp.File("c"))[Path.Combine("unet", "diffusion_pytorch_model.safetensors")],
            Is.Not.EqualTo(Hashes(temp.File("a"))[Path.Combine("unet", "diffusion_pytorch_model.safetensors")]));
    }

    [Test]
    public void Written_Model_Should_LoadAsADiffusersFolder_And_GenerateAnImage()
    {
        using var temp = new TempFolder();
        BuiltinTiny.Write(temp.Path, seed: 0);

        using var pipeline = StableDiffusionPipeline.FromFolder(DiffusersFolder.Open(temp.Path), torch.CPU);
        var result = pipeline.Generate(new TextToImageRequest(["a red circle on a blue background"], [1], Steps: 2, Sampler: "ddim",
            Width: BuiltinTiny.ImageSize, Height: BuiltinTiny.ImageSize));

        Assert.That(result.Images.Single().Width, Is.EqualTo(64));
        Assert.That(result.Latents.shape, Is.EqualTo(new long[] { 1, 4, 16, 16 }));
        Assert.That(pipeline.Tokenizer.VocabularySize, Is.EqualTo(SdPipeline.Tokenization.CharacterVocabulary.Size));
    }
}
