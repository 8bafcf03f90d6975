using SdPipeline.Models.Clip;
using SdPipeline.Sampling;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>SDXL's two text encoders and <c>encode_prompt</c> against parity-sdxl/text_encoders.</summary>
public sealed class SdxlTextEncodersParityTests
{
    private static readonly string[] Prompts =
    [
        "a photo of an astronaut riding a horse on mars",
        "",
        "A CAFÉ in Zürich at night!~ 8k!!",
        string.Concat(Enumerable.Repeat("a highly detailed painting of a dragon ", 12)),
    ];

    [Test]
    public void ClipTextModelWithProjection_Should_MatchTransformers_When_RunOnTheParityIds()
    {
        // Given text_encoder_2 (gelu, projection 20 ≠ hidden 24) and the recorded ids (padded with 0)
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var model = ClipTextModelWithProjection.FromPretrained(TinySdxl.Open());
        using var fixture = TinySdxl.Parity("text_encoders");
        var ids = fixture.Get("input_ids_2");

        // When they are encoded
        var hiddenStates = model.HiddenStates(ids);
        var lastHidden = model.LastHiddenState(ids);
        var pooledIndex = model.PooledIndex(ids);
        var pooled = model.Pool(lastHidden, ids);
        var textEmbeds = model.forward(ids);

        // Then every hidden state, the end-of-text positions, the pooled state and its projection match
        Assert.That(hiddenStates, Has.Count.EqualTo(5));
        for (int i = 0; i < hiddenStates.Count; i++)
            AssertClose($"hidden_states.{i}", hiddenStates[i], fixture.Get($"text_encoder_2.hidden_states.{i}"));
        AssertClose("last_hidden_state", lastHidden, fixture.Get("text_encoder_2.last_hidden_state"));
        Assert.That(pooledIndex.data<long>().ToArray(), Is.EqualTo(fixture.Get("text_encoder_2.pooled_index").data<long>().ToArray()));
        AssertClose("pooler_output", pooled, fixture.Get("text_encoder_2.pooler_output"));
        AssertClose("text_embeds", textEmbeds, fixture.Get("text_encoder_2.text_embeds"));
    }

    [Test]
    public void PooledIndex_Should_FindTheFirstEndOfText_When_TheConfigHasTheRealEosId()
    {
        // Given ids with a real id 0 before the end-of-text, as prompt 3 of the fixture
        using var scope = torch.NewDisposeScope();
        using var model = new ClipTextModelWithProjection(new ClipTextConfig { HiddenSize = 8, IntermediateSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2 },
            projectionDim: 4, eosTokenId: 49407);
        var ids = torch.tensor(new long[] { 49406, 5, 0, 7, 49407, 49407, 49407 }).unsqueeze(0);

        // Then the pooled position is the first 49407, not "the first pad minus one"
        Assert.That(model.PooledIndex(ids).item<long>(), Is.EqualTo(4));
    }

    [Test]
    public void Encode_Should_GiveDiffusersPromptEmbedsAndPooledEmbeds_When_BothTokenizersAndEncodersRun()
    {
        // Given both tokenizers (the second pads with "!") and both encoders of tiny-sdxl
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var folder = TinySdxl.Open();
        using var textEncoder = ClipTextModel.FromPretrained(folder);
        using var textEncoder2 = ClipTextModelWithProjection.FromPretrained(folder);
        var encoder = new SdxlPromptEncoder(ClipTokenizer.FromFolder(folder.Component("tokenizer")),
            ClipTokenizer.FromFolder(folder.Component("tokenizer_2")), textEncoder, textEncoder2);
        using var fixture = TinySdxl.Parity("text_encoders");

        // When the parity prompts are tokenized and encoded
        var ids = encoder.Tokenizer.EncodeBatch(Prompts);
        var ids2 = encoder.Tokenizer2.EncodeBatch(Prompts);
        var embeddings = encoder.Encode(Prompts, torch.CPU);

        // Then the ids are exact (pads 49407 / 0), prompt_embeds [4, 77, 32 + 24] and the pooled embeds match
        Assert.That(ids.data<long>().ToArray(), Is.EqualTo(fixture.Get("input_ids").data<long>().ToArray()));
        Assert.That(ids2.data<long>().ToArray(), Is.EqualTo(fixture.Get("input_ids_2").data<long>().ToArray()));
        Assert.That(encoder.EmbeddingWidth, Is.EqualTo(56));
        AssertClose("prompt_embeds", embeddings.PromptEmbeds, fixture.Get("prompt_embeds"));
        AssertClose("pooled_prompt_embeds", embeddings.PooledPromptEmbeds, fixture.Get("pooled_prompt_embeds"));
    }

    [Test]
    public void SaveThenFromPretrained_Should_KeepTheProjectionAndPoolingRule()
    {
        using var temp = new TempFolder();
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var original = ClipTextModelWithProjection.FromPretrained(TinySdxl.Open());
        File.Copy(Path.Combine(TinySdxl.Folder, "model_index.json"), temp.File("model_index.json"));

        original.Save(temp.File("text_encoder_2"), bosTokenId: 0, padTokenId: 1);
        using var reloaded = ClipTextModelWithProjection.FromPretrained(SdPipeline.Weights.DiffusersFolder.Open(temp.Path));

        Assert.That(reloaded.ProjectionDim, Is.EqualTo(20));
        Assert.That(reloaded.EosTokenId, Is.EqualTo(2));
        Assert.That(File.ReadAllText(temp.File("text_encoder_2/config.json")), Does.Contain("CLIPTextModelWithProjection"));
        using var fixture = TinySdxl.Parity("text_encoders");
        AssertClose("text_embeds", reloaded.forward(fixture.Get("input_ids_2")), fixture.Get("text_encoder_2.text_embeds"));
    }

    private static void AssertClose(string what, Tensor actual, Tensor expected)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape), what);
        double error = (actual - expected).abs().max().item<float>();
        TestContext.Out.WriteLine($"{what}: max |diff| {error:E2}");
        Assert.That(error, Is.LessThan(TinySdxl.ModelTolerance), what);
    }
}
