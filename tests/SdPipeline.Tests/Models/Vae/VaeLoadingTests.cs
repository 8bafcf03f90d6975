using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Vae;

public sealed class VaeLoadingTests
{
    [Test]
    public void FromFolder_Should_LoadLegacyAttentionNames_When_TheFileWasWrittenByOldDiffusers()
    {
        // Given the tiny VAE re-saved with the pre-refactor names (query/key/value/proj_attn), as SD 1.5's file has them
        using var temp = new TempFolder();
        var folder = TinySdFolder.CopyTo(temp.Path, "vae");
        TinySdFolder.EditWeights(temp.Path, "vae", tensors =>
        {
            foreach (var (legacy, current) in AutoencoderKL.LegacyKeys.Aliases)
            {
                tensors[legacy] = tensors[current];
                tensors.Remove(current);
            }
        });
        using var reference = AutoencoderKL.FromFolder(DiffusersFolder.Open(TinySdFolder.Source));

        // When it is loaded
        using var vae = AutoencoderKL.FromFolder(folder);

        // Then every tensor landed under its current name
        var expected = reference.state_dict();
        foreach (var (name, tensor) in vae.state_dict())
            Assert.That(tensor.bytes.ToArray(), Is.EqualTo(expected[name].bytes.ToArray()), name);
    }

    [Test]
    public void FromFolder_Should_NameEveryMissingExtraAndWronglyShapedKey_When_WeightsDoNotMatchTheConfig()
    {
        using var temp = new TempFolder();
        var folder = TinySdFolder.CopyTo(temp.Path, "vae");
        TinySdFolder.EditWeights(temp.Path, "vae", tensors =>
        {
            tensors.Remove("decoder.conv_out.bias");
            tensors["encoder.extra.weight"] = torch.zeros(3);
            tensors["quant_conv.weight"] = torch.zeros(8, 8, 3, 3);
        });

        var error = Assert.Throws<WeightsException>(() => AutoencoderKL.FromFolder(folder))!;

        Assert.That(error.Message, Does.Contain("1 missing, 1 unexpected, 1 wrongly shaped"));
        Assert.That(error.Message, Does.Contain("decoder.conv_out.bias").And.Contain("encoder.extra.weight").And.Contain("quant_conv.weight: file [8, 8, 3, 3], model [8, 8, 1, 1]"));
    }

    [TestCase("down_block_types", "[\"DownEncoderBlock2D\", \"AttnDownEncoderBlock2D\"]", "AttnDownEncoderBlock2D")]
    [TestCase("act_fn", "\"relu\"", "relu")]
    [TestCase("block_out_channels", "[32, 48]", "48")]
    public void FromFolder_Should_RefuseNamingKeyAndValue_When_TheConfigCannotBeBuilt(string key, string value, string shown)
    {
        using var temp = new TempFolder();
        var folder = TinySdFolder.CopyTo(temp.Path, "vae");
        var config = folder.ComponentJson("vae");
        config[key] = JToken.Parse(value);
        File.WriteAllText(Path.Combine(temp.Path, "vae", "config.json"), config.ToString());

        var error = Assert.Throws<DiffusersConfigException>(() => AutoencoderKL.FromFolder(folder))!;

        Assert.That(error.Message, Does.Contain("config.json").And.Contain($"\"{key}\"").And.Contain(shown));
    }

    [Test]
    public void SaveThenFromFolder_Should_RoundTripConfigAndWeightsBitExactly()
    {
        using var temp = new TempFolder();
        using var original = AutoencoderKL.FromFolder(DiffusersFolder.Open(TinySdFolder.Source));
        File.Copy(Path.Combine(TinySdFolder.Source, "model_index.json"), temp.File("model_index.json"));

        original.Save(temp.File("vae"));
        using var reloaded = AutoencoderKL.FromFolder(DiffusersFolder.Open(temp.Path));

        var written = JObject.Parse(File.ReadAllText(temp.File("vae/config.json")));
        var diffusers = JObject.Parse(File.ReadAllText(Path.Combine(TinySdFolder.Source, "vae", "config.json")));
        Assert.That(JToken.DeepEquals(written, diffusers), Is.True, written.ToString());
        var before = original.state_dict();
        Assert.That(reloaded.state_dict().Keys, Is.EqualTo(before.Keys));
        foreach (var (name, tensor) in reloaded.state_dict())
            Assert.That(tensor.bytes.ToArray(), Is.EqualTo(before[name].bytes.ToArray()), name);
    }

    [Test]
    public void Load_Should_FillDiffusersDefaults_When_TheShippedSd15ConfigOmitsKeys()
    {
        string folder = Path.Combine(RepoPaths.Fixtures, "sd15-keys", "vae");
        var shipped = AutoencoderKLConfig.Load(Path.Combine(folder, "config.shipped.json"));
        var diffusersFull = JObject.Parse(File.ReadAllText(Path.Combine(folder, "config.json")));

        Assert.That(JToken.DeepEquals(shipped.ToJson(), diffusersFull), Is.True, shipped.ToJson().ToString());
        Assert.That(shipped.ScalingFactor, Is.EqualTo(0.18215));
        Assert.That(shipped.ShiftFactor, Is.Null);
    }

    [Test]
    public void Constructor_Should_LeaveOutTheMidBlockAttentionAndQuantConvs_When_TheConfigSaysSo()
    {
        var config = new AutoencoderKLConfig { MidBlockAddAttention = false, UseQuantConv = false, UsePostQuantConv = false };

        using var vae = new AutoencoderKL(config, new Device(DeviceType.META));

        var keys = vae.state_dict().Keys.ToList();
        Assert.That(keys, Has.None.Contains("attentions").And.None.Contains("quant_conv"));
        Assert.That(keys, Does.Contain("encoder.mid_block.resnets.1.conv2.weight"));
    }
}
