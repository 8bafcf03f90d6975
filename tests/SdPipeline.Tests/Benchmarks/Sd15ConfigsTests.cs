using Newtonsoft.Json.Linq;
using SdPipeline.Benchmarks;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Benchmarks;

public sealed class Sd15ConfigsTests
{
    [Test]
    public void Unet_Should_BeTheArchitectureOfSd15sConfigFile()
    {
        var fromFile = UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "unet", "config.json"));

        Assert.That(JToken.DeepEquals(Sd15Configs.Unet.ToJson(), fromFile.ToJson()), Is.True,
            $"built in:\n{Sd15Configs.Unet.ToJson()}\nfile:\n{fromFile.ToJson()}");
    }

    [Test]
    public void Vae_Should_BeTheArchitectureOfSd15sConfigFile()
    {
        var fromFile = AutoencoderKLConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "vae", "config.json"));

        Assert.That(JToken.DeepEquals(Sd15Configs.Vae.ToJson(), fromFile.ToJson()), Is.True,
            $"built in:\n{Sd15Configs.Vae.ToJson()}\nfile:\n{fromFile.ToJson()}");
    }
}
