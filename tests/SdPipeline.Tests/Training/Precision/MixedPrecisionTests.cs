using SdPipeline.Config;
using SdPipeline.Training.Precision;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

public sealed class MixedPrecisionTests
{
    [TestCase("no", null, false)]
    [TestCase("fp16", ScalarType.Float16, true)]
    [TestCase("bf16", ScalarType.BFloat16, false)]
    [TestCase(" BF16 ", ScalarType.BFloat16, false)]
    public void Parse_Should_MapTheConfigValue_To_AnAutocastDtypeAndLossScaling(string value, ScalarType? dtype, bool scaled)
    {
        var precision = MixedPrecision.Parse(value);

        Assert.That(precision.AutocastDtype, Is.EqualTo(dtype));
        Assert.That(precision.UsesLossScaling, Is.EqualTo(scaled));
        Assert.That(precision.Name, Is.EqualTo(value.Trim().ToLowerInvariant()));
    }

    [TestCase("fp32")]
    [TestCase("")]
    [TestCase(null)]
    public void Parse_Should_ListTheValidValues_When_TheValueIsUnknown(string? value)
    {
        var error = Assert.Throws<ConfigException>(() => MixedPrecision.Parse(value, "train.mixed_precision"));

        Assert.That(error!.Message, Does.Contain("train.mixed_precision"));
        Assert.That(error.Message, Does.Contain("no, fp16, bf16"));
    }

    [Test]
    public void EnterAutocast_Should_EnterTheModesRegion()
    {
        using (MixedPrecision.Bf16.EnterAutocast()) Assert.That(Autocast.Current, Is.EqualTo(ScalarType.BFloat16));
        using (Autocast.Enter(ScalarType.Float16))
        using (MixedPrecision.No.EnterAutocast())
            Assert.That(Autocast.Current, Is.Null);
    }
}
