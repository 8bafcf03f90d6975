using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Config;

/// <summary>Every numeric key has a range in the schema; a value outside it is refused before anything runs.</summary>
public sealed class ConfigRangeTests
{
    // Each of these used to be accepted: the first two looped until memory ran out, the third divided by zero,
    // NaN failed at training step 2, the negative step count silently switched to epoch mode, and the pixel
    // limit overflowed the decode buffer.
    [TestCase("train.train_batch_size=0", "integer ≥ 1")]
    [TestCase("latents.shard_size=0", "integer ≥ 1")]
    [TestCase("train.gradient_accumulation_steps=0", "integer ≥ 1")]
    [TestCase("train.learning_rate=NaN", "number in (0, 1]")]
    [TestCase("train.learning_rate=0", "number in (0, 1]")]
    [TestCase("train.adam_beta2=Infinity", "number in [0, 1)")]
    [TestCase("train.max_train_steps=-1", "integer ≥ 0")]
    [TestCase("download.max_pixels=6400000000", "integer in [1, 268435456]")]
    [TestCase("latents.resolution=500", "multiple of 8")]
    [TestCase("sample.seeds=0,-1", "integer ≥ 0")]
    [TestCase("train.seed=99999999999", "integer ≥ 0")]
    [TestCase("train.seed=123456789012345678901234567890", "integer ≥ 0")]
    public void Set_Should_RefuseNamingKeyAndRange_When_ValueIsOutsideTheRange(string assignment, string range)
    {
        string key = assignment[..assignment.IndexOf('=')];

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, [assignment]))!;

        Assert.That(error.Message, Does.Contain(key).And.Contain(range));
    }

    [Test]
    public void Load_Should_NameTheProfile_When_ItHoldsAValueOutsideTheRange()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("p.json"), """{ "train": { "train_batch_size": -4 } }""");

        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(temp.File("p.json")))!;

        Assert.That(error.Message, Does.Contain("p.json").And.Contain("train.train_batch_size = -4").And.Contain("≥ 1"));
    }

    [TestCase("train.learning_rate=1", 1.0)]
    [TestCase("download.heldout_fraction=0", 0.0)]
    [TestCase("latents.resolution=8", 8.0)]
    public void Set_Should_Accept_When_ValueIsOnTheClosedEnd(string assignment, double expected)
    {
        var config = ConfigLoader.Load(null, [assignment]);

        string key = assignment[..assignment.IndexOf('=')];
        Assert.That(config.Json.SelectToken(key)!.Value<double>(), Is.EqualTo(expected));
    }

    [Test]
    public void Defaults_Should_LieInsideTheirRanges_And_EveryIntegerKeyShouldDeclareOne()
    {
        foreach (var key in ConfigSchema.Keys.Where(k => k.IsNumeric))
        {
            var values = key.Default is JArray array ? array.Select(v => v.Value<double>()) : [key.Default.Value<double>()];
            foreach (double value in values)
                Assert.That(key.Range.Contains(value), Is.True, $"{key.Path}'s default {value} is outside {key.TypeAndRange}");
            // Integers count things (steps, items, bytes): a key without a lower bound is a key nobody thought about.
            var element = key.Type.IsArray ? key.Type.GetElementType()! : key.Type;
            if (element == typeof(int) || element == typeof(long))
                Assert.That(key.Range.Min, Is.GreaterThan(int.MinValue), $"{key.Path} declares no Min in its [ConfigKey]");
        }
    }

    [Test]
    public void Cli_Should_Exit2NamingTheRange_When_ASetValueIsOutsideIt()
    {
        using var temp = new TempFolder();

        var result = CliRunner.Sdpipe(RepoPaths.Root, null, "plan", "--set", "train.gradient_accumulation_steps=0", "--artifacts", temp.Path);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("train.gradient_accumulation_steps = 0 is outside its range: integer ≥ 1"));
    }

    [Test]
    public void ConfigDefaults_Should_ShowEachKeysRange()
    {
        using var temp = new TempFolder();

        var result = CliRunner.Sdpipe(temp.Path, null, "config", "--defaults");

        Assert.That(result.ExitCode, Is.EqualTo(0), result.All);
        Assert.That(result.Output, Does.Contain("train.train_batch_size (integer ≥ 1) = 16"));
        Assert.That(result.Output, Does.Contain("download.heldout_fraction (number in [0, 1)) = 0.05"));
    }
}
