using SdPipeline.Models.Clip;
using SdPipeline.Models.Shared;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Models.Clip;

public sealed class ClipTextConfigTests
{
    [Test]
    public void Load_Should_ReadSd15Architecture_When_GivenItsConfig()
    {
        var warnings = new List<string>();

        var config = ClipTextConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "text_encoder", "config.json"), warnings.Add);

        Assert.That(config, Is.EqualTo(new ClipTextConfig
        {
            VocabSize = 49408,
            HiddenSize = 768,
            IntermediateSize = 3072,
            NumHiddenLayers = 12,
            NumAttentionHeads = 12,
            MaxPositionEmbeddings = 77,
            HiddenAct = "quick_gelu",
            LayerNormEps = 1e-5,
            ProjectionDim = 768,
            EosTokenId = 2,
        }));
        // the stale bos/pad ids and the bookkeeping keys are known and ignored quietly
        Assert.That(warnings, Is.Empty);
    }

    [Test]
    public void Parse_Should_ReadTheProjectionKeys_When_TheConfigIsSdxlsSecondEncoder()
    {
        // CLIPTextModelWithProjection reads its projection width and pooling id from the same record, not from a second pass over the file
        var config = ClipTextConfig.Parse("""{ "hidden_size": 64, "num_attention_heads": 4, "projection_dim": 32, "eos_token_id": 49407 }""", "te2/config.json");

        Assert.That((config.ProjectionDim, config.EosTokenId), Is.EqualTo((32, 49407)));
        Assert.That(ClipTextConfig.Parse("{}", "te/config.json") is { ProjectionDim: 512, EosTokenId: 2 }, "transformers' CLIPTextConfig defaults");
    }

    [Test]
    public void Parse_Should_NameKeyAndValue_When_ActivationIsUnsupported()
    {
        var error = Assert.Throws<DiffusersConfigException>(() => ClipTextConfig.Parse("""{ "hidden_act": "gelu_new" }""", "te/config.json"))!;

        Assert.That(error.Message, Does.Contain("te/config.json").And.Contain("hidden_act 'gelu_new'").And.Contain("quick_gelu, gelu"));
    }

    [Test]
    public void Parse_Should_Refuse_When_HeadsDoNotDivideWidth()
    {
        var error = Assert.Throws<DiffusersConfigException>(() => ClipTextConfig.Parse("""{ "hidden_size": 30, "num_attention_heads": 4 }""", "c.json"))!;

        Assert.That(error.Message, Does.Contain("hidden_size 30").And.Contain("num_attention_heads 4"));
    }

    [Test]
    public void Parse_Should_WarnByName_When_KeyIsUnknown()
    {
        var warnings = new List<string>();

        var config = ClipTextConfig.Parse("""{ "hidden_act": "gelu", "hiden_size": 1024 }""", "c.json", warnings.Add);

        Assert.That(config.HiddenAct, Is.EqualTo("gelu"));
        Assert.That(config.HiddenSize, Is.EqualTo(512)); // transformers' default, the misspelt key changed nothing
        Assert.That(warnings, Has.Count.EqualTo(1).And.Some.Contain("'hiden_size'"));
    }

    [Test]
    public void Parse_Should_NameTheFile_When_ValueHasWrongType()
    {
        var error = Assert.Throws<DiffusersConfigException>(() => ClipTextConfig.Parse("""{ "hidden_size": "wide" }""", "c.json"))!;

        Assert.That(error.Message, Does.Contain("c.json").And.Contain("hidden_size"));
    }
}
