using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Config;

public sealed class ConfigLoaderTests
{
    [Test]
    public void Load_Should_FillDefaults_When_ProfileIsEmpty()
    {
        // Given an empty profile
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("p.json"), "{}");

        // When it is loaded
        var config = ConfigLoader.Load(temp.File("p.json"));

        // Then every key has its documented default
        Assert.That(config.Typed.Download.Dataset, Is.EqualTo("shapes"));
        Assert.That(config.Json["download"]!["min_side"]!.Value<int>(), Is.EqualTo(32));
        Assert.That(ConfigSchema.Keys.Select(k => k.Path), Does.Contain("model.base"));
    }

    [Test]
    public void Load_Should_NameTheClosestKey_When_ProfileHasUnknownKey()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("p.json"), """{ "download": { "cont": 5 } }""");

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(temp.File("p.json")))!;

        Assert.That(error.Message, Does.Contain("p.json").And.Contain("'download.cont'").And.Contain("did you mean 'download.count'"));
    }

    [Test]
    public void Load_Should_NameTheClosestSection_When_SectionIsUnknown()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("p.json"), """{ "donwload": { } }""");

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(temp.File("p.json")))!;

        Assert.That(error.Message, Does.Contain("'donwload'").And.Contain("did you mean 'download'"));
    }

    [Test]
    public void Set_Should_RejectWrongType_When_IntegerKeyGetsText()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, ["download.count=many"]))!;

        Assert.That(error.Message, Does.Contain("download.count").And.Contain("integer").And.Contain("many"));
    }

    [Test]
    public void Set_Should_RejectValue_When_NotAmongAllowedValues()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, ["runtime.device=tpu"]))!;

        Assert.That(error.Message, Does.Contain("runtime.device").And.Contain("cpu, cuda, auto"));
    }

    [Test]
    public void Set_Should_ParseEachType_When_ValuesAreValid()
    {
        var config = ConfigLoader.Load(null, ["download.count=128", "download.heldout_fraction=0.25", "model.base=hf:org/name", "download.max_pixels=1000"]);

        Assert.That(config.Typed.Download.Count, Is.EqualTo(128));
        Assert.That(config.Typed.Download.HeldoutFraction, Is.EqualTo(0.25));
        Assert.That(config.Typed.Model.Base, Is.EqualTo("hf:org/name"));
        Assert.That(config.Typed.Download.MaxPixels, Is.EqualTo(1000));
    }

    [Test]
    public void Set_Should_Fail_When_AssignmentHasNoEquals()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, ["download.count"]))!;

        Assert.That(error.Message, Does.Contain("section.key=value"));
    }

    [Test]
    public void Load_Should_NameTheFile_When_FileIsMissing()
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load("/nonexistent/profile.json"))!;

        Assert.That(error.Message, Does.Contain("/nonexistent/profile.json"));
    }

    [Test]
    public void Load_Should_GiveLineAndPosition_When_JsonIsInvalid()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("p.json"), "{\n  \"download\": { \"count\": 5, }\n  oops\n}");

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(temp.File("p.json")))!;

        Assert.That(error.Message, Does.Contain("p.json").And.Contain("line"));
    }

    [Test]
    public void Slice_Should_BeIndependentOfKeyOrder_When_ProfilesListKeysDifferently()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("a.json"), """{ "download": { "count": 5, "min_side": 40 } }""");
        File.WriteAllText(temp.File("b.json"), """{ "download": { "min_side": 40, "count": 5 } }""");

        string a = CanonicalJson.Serialize(ConfigLoader.Load(temp.File("a.json")).Slice(["download"]));
        string b = CanonicalJson.Serialize(ConfigLoader.Load(temp.File("b.json")).Slice(["download"]));

        Assert.That(a, Is.EqualTo(b));
    }

    [Test]
    public void ShippedProfiles_Should_Load_When_ReadFromConfigsFolder()
    {
        foreach (string profile in Directory.GetFiles(Path.Combine(RepoPaths.Root, "configs"), "*.json"))
            Assert.DoesNotThrow(() => ConfigLoader.Load(profile), profile);
    }
}
