using Newtonsoft.Json.Linq;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Vae;

/// <summary>The real Stable Diffusion 1.5 VAE's state-dict keys and shapes (fixtures/sd15-keys), built on the meta device.</summary>
public sealed class VaeSd15KeysTests
{
    private static readonly Device Meta = new(DeviceType.META);

    [TestCase("config.json")]
    [TestCase("config.shipped.json")]
    public void StateDict_Should_HaveExactlyTheDiffusersKeysAndShapes_When_BuiltFromTheSd15Config(string configFile)
    {
        var config = AutoencoderKLConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "vae", configFile));
        var expected = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "vae_keys.json")));

        using var vae = new AutoencoderKL(config, Meta);

        var actual = vae.state_dict().Select(p => $"{p.Key} [{string.Join(", ", p.Value.shape)}]").ToList();
        var wanted = ((JObject)expected["keys"]!).Properties().Select(p => $"{p.Name} [{string.Join(", ", p.Value.Values<long>())}]").ToList();
        Assert.That(actual, Is.EqualTo(wanted));
        Assert.That(vae.parameters().Sum(p => p.NumberOfElements), Is.EqualTo(expected.Value<long>("total_parameters")).And.EqualTo(83_653_863L));
    }

    [Test]
    public void LegacyKeys_Should_MapEveryLegacyNameOfTheSd15KeyListToItsCurrentName()
    {
        // The fixture lists the renames diffusers applies to old VAE files; the loader's table must agree.
        var expected = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "vae_keys.json")));
        var aliases = ((JObject)expected["legacy_key_aliases"]!).Properties().ToDictionary(p => p.Name, p => p.Value.ToString());

        Assert.That(AutoencoderKL.LegacyKeys.Aliases, Is.EquivalentTo(aliases));
    }
}
