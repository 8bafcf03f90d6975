using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Models.Unet;

public sealed class UNet2DConditionConfigTests
{
    private static string Sd15(string file) => Path.Combine(RepoPaths.Fixtures, "sd15-keys", "unet", file);

    [Test]
    public void Load_Should_FillDiffusersDefaults_When_TheShippedSd15ConfigOmitsKeys()
    {
        // Given SD 1.5's published config (diffusers 0.6.0 key set) and the one diffusers writes with every default
        var shipped = UNet2DConditionConfig.Load(Sd15("config.shipped.json"));
        var full = UNet2DConditionConfig.Load(Sd15("config.json"));

        // Then both describe the same model, and writing either reproduces diffusers' full file
        var diffusersFull = JObject.Parse(File.ReadAllText(Sd15("config.json")));
        Assert.That(JToken.DeepEquals(shipped.ToJson(), diffusersFull), Is.True, shipped.ToJson().ToString());
        Assert.That(JToken.DeepEquals(full.ToJson(), diffusersFull), Is.True, full.ToJson().ToString());
        Assert.That(shipped.CrossAttentionDim, Is.EqualTo(768));
        Assert.That(shipped.HeadsOfDownBlock(3), Is.EqualTo(8));
        Assert.That(shipped.TimeEmbedDim, Is.EqualTo(1280));
        Assert.That(shipped.UnknownKeys, Is.Empty);
    }

    [Test]
    public void Parse_Should_NameKeyAndValue_When_AValueHasTheWrongType()
    {
        var json = JObject.Parse(File.ReadAllText(Sd15("config.json")));
        json["layers_per_block"] = "two";

        var error = Assert.Throws<DiffusersConfigException>(() => UNet2DConditionConfig.Parse(json, "unet/config.json"))!;

        Assert.That(error.Message, Is.EqualTo("unet/config.json: \"layers_per_block\": expected an integer, found \"two\""));
    }

    [Test]
    public void Parse_Should_RefuseAPerBlockHeadListOfTheWrongLength()
    {
        var json = JObject.Parse(File.ReadAllText(Sd15("config.json")));
        json["attention_head_dim"] = new JArray(5, 10, 20);

        var error = Assert.Throws<DiffusersConfigException>(() => UNet2DConditionConfig.Parse(json, "c.json"))!;

        Assert.That(error.Message, Does.Contain("\"attention_head_dim\"").And.Contain("[5, 10, 20] has 3 entries for 4 down blocks"));
    }

    [Test]
    public void Parse_Should_ReportKeysDiffusersDoesNotKnow_When_PresentAndIgnoreThePrivateOnes()
    {
        var json = JObject.Parse(File.ReadAllText(Sd15("config.json")));
        json["my_custom_flag"] = true;

        var config = UNet2DConditionConfig.Parse(json, "c.json");

        Assert.That(config.UnknownKeys, Is.EqualTo(new[] { "my_custom_flag" }));
    }

    [Test]
    public void HeadsOfDownBlock_Should_PreferNumAttentionHeads_When_Given()
    {
        var json = JObject.Parse(File.ReadAllText(Sd15("config.json")));
        json["num_attention_heads"] = new JArray(5, 10, 20, 20);

        var config = UNet2DConditionConfig.Parse(json, "c.json");

        Assert.That(Enumerable.Range(0, 4).Select(config.HeadsOfDownBlock), Is.EqualTo(new[] { 5, 10, 20, 20 }));
        Assert.That(config.ToJson()["num_attention_heads"]!.Values<int>(), Is.EqualTo(new[] { 5, 10, 20, 20 }));
    }

    [Test]
    public void Validate_Should_RefuseHeadsThatDoNotDivideTheChannels()
    {
        var config = new UNet2DConditionConfig { AttentionHeadDim = [7] };

        var error = Assert.Throws<DiffusersConfigException>(() => config.Validate("c.json"))!;

        Assert.That(error.Message, Does.Contain("\"attention_head_dim\"").And.Contain("7 heads do not divide block 0's 320 channels"));
    }
}
