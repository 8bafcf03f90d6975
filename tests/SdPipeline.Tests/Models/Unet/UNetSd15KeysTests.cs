using Newtonsoft.Json.Linq;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>
/// The real Stable Diffusion 1.5 UNet's state-dict keys and shapes (fixtures/sd15-keys), built on the meta device:
/// shapes without memory or initialisation, so the 860 M-parameter model costs nothing to check.
/// </summary>
public sealed class UNetSd15KeysTests
{
    private static readonly Device Meta = new(DeviceType.META);

    [TestCase("config.json")]
    [TestCase("config.shipped.json")]
    public void StateDict_Should_HaveExactlyTheDiffusersKeysAndShapes_When_BuiltFromTheSd15Config(string configFile)
    {
        // Given SD 1.5's config (full, or the reduced key set the published checkpoint ships)
        var config = UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "unet", configFile));
        var expected = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "unet_keys.json")));

        // When the model is built on the meta device
        using var unet = new UNet2DConditionModel(config, Meta);

        // Then its state_dict lists diffusers' keys, in diffusers' order, with diffusers' shapes, and the parameter count matches
        var actual = unet.state_dict().Select(p => $"{p.Key} [{string.Join(", ", p.Value.shape)}]").ToList();
        var wanted = ((JObject)expected["keys"]!).Properties().Select(p => $"{p.Name} [{string.Join(", ", p.Value.Values<long>())}]").ToList();
        Assert.That(actual, Is.EqualTo(wanted));
        Assert.That(unet.parameters().Sum(p => p.NumberOfElements), Is.EqualTo(expected.Value<long>("total_parameters")).And.EqualTo(859_520_964L));
        Assert.That(unet.parameters().All(p => p.device_type == DeviceType.META), Is.True);
    }
}
