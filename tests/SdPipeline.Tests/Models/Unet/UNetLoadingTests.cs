using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

public sealed class UNetLoadingTests
{
    [Test]
    public void FromFolder_Should_NameEveryMissingExtraAndWronglyShapedKey_When_WeightsDoNotMatchTheConfig()
    {
        // Given a copy of the tiny UNet with one key missing, one extra and one of the wrong shape
        using var temp = new TempFolder();
        var folder = TinySdFolder.CopyTo(temp.Path, "unet");
        TinySdFolder.EditWeights(temp.Path, "unet", tensors =>
        {
            tensors.Remove("conv_out.bias");
            tensors["conv_out.extra"] = torch.zeros(3);
            tensors["conv_in.weight"] = torch.zeros(32, 4, 1, 1);
        });

        // When it is loaded
        var error = Assert.Throws<WeightsException>(() => UNet2DConditionModel.FromFolder(folder))!;

        // Then one error names all three
        Assert.That(error.Message, Does.Contain("1 missing, 1 unexpected, 1 wrongly shaped"));
        Assert.That(error.Message, Does.Contain("conv_out.bias").And.Contain("conv_out.extra").And.Contain("conv_in.weight: file [32, 4, 1, 1], model [32, 4, 3, 3]"));
    }

    [TestCase("class_embed_type", "\"timestep\"")]
    [TestCase("addition_embed_type", "\"text_image\"")]
    [TestCase("attention_type", "\"gated\"")]
    [TestCase("time_embedding_type", "\"fourier\"")]
    [TestCase("num_class_embeds", "10")]
    [TestCase("resnet_time_scale_shift", "\"scale_shift\"")]
    [TestCase("only_cross_attention", "true")]
    [TestCase("mid_block_type", "\"UNetMidBlock2DSimpleCrossAttn\"")]
    [TestCase("down_block_types", "[\"DownBlock2D\", \"AttnDownBlock2D\"]")]
    [TestCase("transformer_layers_per_block", "[1, 2, 3]")]
    [TestCase("act_fn", "\"gelu\"")]
    public void FromFolder_Should_RefuseNamingKeyAndValue_When_TheConfigSelectsAnUnportedOption(string key, string value)
    {
        using var temp = new TempFolder();
        var folder = TinySdFolder.CopyTo(temp.Path, "unet");
        var config = folder.ComponentJson("unet");
        config[key] = JToken.Parse(value);
        File.WriteAllText(Path.Combine(temp.Path, "unet", "config.json"), config.ToString());

        var error = Assert.Throws<DiffusersConfigException>(() => UNet2DConditionModel.FromFolder(folder))!;

        Assert.That(error.Message, Does.Contain("config.json").And.Contain($"\"{key}\""));
        string shown = JToken.Parse(value) is JArray array ? array.Last!.ToString() : JToken.Parse(value).ToString(Newtonsoft.Json.Formatting.None);
        Assert.That(error.Message, Does.Contain(shown));
    }

    [Test]
    public void SaveThenFromFolder_Should_RoundTripConfigAndWeightsBitExactly()
    {
        // Given the tiny UNet loaded from the fixture
        using var temp = new TempFolder();
        using var original = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(TinySdFolder.Source));
        File.Copy(Path.Combine(TinySdFolder.Source, "model_index.json"), temp.File("model_index.json"));

        // When it is saved and loaded again
        original.Save(temp.File("unet"));
        using var reloaded = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(temp.Path));

        // Then the config.json is the one diffusers wrote, key for key, and every tensor is bit-identical
        var written = JObject.Parse(File.ReadAllText(temp.File("unet/config.json")));
        var diffusers = JObject.Parse(File.ReadAllText(Path.Combine(TinySdFolder.Source, "unet", "config.json")));
        Assert.That(JToken.DeepEquals(written, diffusers), Is.True, written.ToString());
        var before = original.state_dict();
        foreach (var (name, tensor) in reloaded.state_dict())
            Assert.That(tensor.bytes.ToArray(), Is.EqualTo(before[name].bytes.ToArray()), name);
        Assert.That(reloaded.state_dict().Keys, Is.EqualTo(before.Keys));
    }
}
