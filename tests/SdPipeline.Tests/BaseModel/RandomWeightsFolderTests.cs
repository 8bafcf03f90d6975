using SdPipeline.BaseModel;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.BaseModel;

public sealed class RandomWeightsFolderTests
{
    private static string TinySd => Path.Combine(RepoPaths.Fixtures, "tiny-sd");

    [Test]
    public void Write_Should_MakeAFolderEveryComponentLoadsFrom_WithTheConfigsShapes_AndNewWeights()
    {
        // Given the tiny diffusers model's configs
        using var temp = new TempFolder();
        string output = temp.File("random");

        // When a random-weight folder is made from them
        RandomWeightsFolder.Write(TinySd, Path.Combine(TinySd, "tokenizer"), output, seed: 3);

        // Then the strict loaders accept every component, each tensor has the real model's shape, and the weights are not the real ones
        var made = DiffusersFolder.Open(output);
        var real = DiffusersFolder.Open(TinySd);
        using (var unet = UNet2DConditionModel.FromFolder(made))
        using (var reference = UNet2DConditionModel.FromFolder(real))
            AssertSameShapesOtherValues(unet.state_dict(), reference.state_dict());
        using (var vae = AutoencoderKL.FromFolder(made))
        using (var reference = AutoencoderKL.FromFolder(real))
            AssertSameShapesOtherValues(vae.state_dict(), reference.state_dict());
        using (var textEncoder = ClipTextModel.FromPretrained(made))
        using (var reference = ClipTextModel.FromPretrained(real))
            AssertSameShapesOtherValues(textEncoder.state_dict(), reference.state_dict());
        Assert.That(File.ReadAllText(Path.Combine(output, "tokenizer", "vocab.json")), Is.EqualTo(File.ReadAllText(Path.Combine(TinySd, "tokenizer", "vocab.json"))));
        Assert.That(Directory.Exists(output + ".partial"), Is.False);
    }

    [Test]
    public void Write_Should_NameTheMissingConfig_AndLeaveNoFolder()
    {
        // Given a configs folder without the UNet's config
        using var temp = new TempFolder();
        string configs = temp.File("configs");
        foreach (string file in new[] { "model_index.json", "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json", "vae/config.json", "text_encoder/config.json" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(configs, file))!);
            File.Copy(Path.Combine(TinySd, file), Path.Combine(configs, file));
        }

        // When / Then the error names unet/config.json, and nothing is made
        var error = Assert.Throws<FileNotFoundException>(() => RandomWeightsFolder.Write(configs, Path.Combine(TinySd, "tokenizer"), temp.File("out"), 0));
        Assert.That(error!.Message, Does.Contain(Path.Combine("unet", "config.json")));
        Assert.That(Directory.Exists(temp.File("out")) || Directory.Exists(temp.File("out.partial")), Is.False);
    }

    [Test]
    public void Write_Should_RefuseAnExistingFolder_WithoutTouchingIt()
    {
        // Given a folder that already holds something
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("keep.txt"), "mine");

        // When / Then it is refused and its content stays
        var error = Assert.Throws<IOException>(() => RandomWeightsFolder.Write(TinySd, Path.Combine(TinySd, "tokenizer"), temp.Path, 0));
        Assert.That(error!.Message, Does.Contain(temp.Path).And.Contain("already exists"));
        Assert.That(File.ReadAllText(temp.File("keep.txt")), Is.EqualTo("mine"));
    }

    private static void AssertSameShapesOtherValues(
        Dictionary<string, TorchSharp.torch.Tensor> made, Dictionary<string, TorchSharp.torch.Tensor> real)
    {
        Assert.That(made.Keys, Is.EquivalentTo(real.Keys));
        foreach (var (name, tensor) in made)
            Assert.That(tensor.shape, Is.EqualTo(real[name].shape), name);
        string largest = real.OrderByDescending(p => p.Value.NumberOfElements).First().Key;
        Assert.That(made[largest].allclose(real[largest]), Is.False, $"{largest} should hold new random weights");
    }
}
