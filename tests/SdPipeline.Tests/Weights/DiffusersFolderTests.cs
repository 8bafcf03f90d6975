using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Weights;

public sealed class DiffusersFolderTests
{
    [Test]
    public void WeightFiles_Should_FindEachComponentOfTheFixtureModel()
    {
        var folder = DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd"));

        Assert.That(Path.GetFileName(folder.WeightFiles("unet").Single()), Is.EqualTo("diffusion_pytorch_model.safetensors"));
        Assert.That(Path.GetFileName(folder.WeightFiles("text_encoder").Single()), Is.EqualTo("model.safetensors"));
        Assert.That(folder.ModelIndex()["unet"]![1]!.ToString(), Is.EqualTo("UNet2DConditionModel"));
    }

    [Test]
    public void WeightFiles_Should_PreferTheVariant_And_FallBackToThePlainFile()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("unet"));
        Directory.CreateDirectory(temp.File("vae"));
        File.WriteAllText(temp.File("model_index.json"), "{}");
        File.WriteAllText(temp.File("unet/diffusion_pytorch_model.fp16.safetensors"), "");
        File.WriteAllText(temp.File("unet/diffusion_pytorch_model.safetensors"), "");
        File.WriteAllText(temp.File("vae/diffusion_pytorch_model.safetensors"), "");
        var folder = DiffusersFolder.Open(temp.Path);

        Assert.That(Path.GetFileName(folder.WeightFiles("unet", "fp16").Single()), Is.EqualTo("diffusion_pytorch_model.fp16.safetensors"));
        Assert.That(Path.GetFileName(folder.WeightFiles("vae", "fp16").Single()), Is.EqualTo("diffusion_pytorch_model.safetensors"));
    }

    [Test]
    public void WeightFiles_Should_RefuseWithConversionHint_When_OnlyPickleWeightsExist()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("unet"));
        File.WriteAllText(temp.File("model_index.json"), "{}");
        File.WriteAllText(temp.File("unet/diffusion_pytorch_model.bin"), "");
        var folder = DiffusersFolder.Open(temp.Path);

        var error = Assert.Throws<WeightsException>(() => folder.WeightFiles("unet"))!;

        Assert.That(error.Message, Does.Contain("diffusion_pytorch_model.bin").And.Contain("safe_serialization=True"));
    }

    [Test]
    public void Open_Should_RefuseACkptFile_WithConversionHint()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("v1-5.ckpt"), "");

        var error = Assert.Throws<WeightsException>(() => DiffusersFolder.Open(temp.File("v1-5.ckpt")))!;

        Assert.That(error.Message, Does.Contain("v1-5.ckpt").And.Contain("from_single_file"));
    }

    [TestCase("MODEL.CKPT")]
    [TestCase("lora.Bin")]
    public void Open_Should_RefuseAPickle_WhateverTheCaseOfItsExtension(string name)
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File(name), "");

        var error = Assert.Throws<WeightsException>(() => DiffusersFolder.Open(temp.File(name)))!;

        Assert.That(error.Message, Does.Contain("Python pickles").And.Contain("safetensors"));
    }

    [Test]
    public void SampleLora_Should_BeRefusedBeforeAnythingRuns_When_ItIsAPickle()
    {
        var config = SdPipeline.Config.ConfigLoader.Load(null, [$"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "sample.lora=/models/style.pt", "sample.prompts=[\"a cat\"]"]);

        Assert.That(SdPipeline.Sampling.SampleStage.CheckConfig(config), Has.One.Contains("sample.lora").And.One.Contains("lora.safetensors"));
    }
}
