using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Models.Unet;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>The tiny SDXL UNet (text_time embedding, per-block transformer depth) against diffusers (parity-sdxl/unet).</summary>
public sealed class SdxlUNetParityTests
{
    [Test]
    public void Forward_Should_MatchDiffusers_When_GivenPooledEmbedsAndTimeIds()
    {
        // Given the tiny SDXL UNet and diffusers' inputs: non-square latents, two different micro-conditionings
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        unet.eval();
        using var fixture = TinySdxl.Parity("unet");
        var added = new AddedConditions(fixture.Get("text_embeds"), fixture.Get("time_ids"));

        // When it predicts, with per-sample int64 timesteps and with a 0-d float timestep
        var output = unet.forward(fixture.Get("sample"), fixture.Get("timesteps"), fixture.Get("encoder_hidden_states"), added);
        var scalar = unet.forward(fixture.Get("sample"), fixture.Get("timestep_scalar"), fixture.Get("encoder_hidden_states"), added);

        // Then both equal diffusers'
        double error = UNetParityTests.MaxAbsDiff(output, fixture.Get("out"));
        double scalarError = UNetParityTests.MaxAbsDiff(scalar, fixture.Get("out_timestep_scalar"));
        TestContext.Out.WriteLine($"SDXL UNet out max |diff| = {error:E2}, 0-d timestep {scalarError:E2}");
        Assert.That(error, Is.LessThan(TinySdxl.ModelTolerance));
        Assert.That(scalarError, Is.LessThan(TinySdxl.ModelTolerance));
    }

    [Test]
    public void AddEmbedding_Should_MatchDiffusersAugEmb_When_ComputedFromTheTimeIds()
    {
        // Given the UNet's add_time_proj / add_embedding and the recorded intermediate outputs
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        unet.eval();
        using var fixture = TinySdxl.Parity("unet");
        var modules = unet.named_children().ToDictionary(c => c.name, c => c.module);
        var addTimeProj = (Timesteps)modules["add_time_proj"];
        var addEmbedding = (TimestepEmbedding)modules["add_embedding"];
        var timeIds = fixture.Get("time_ids");

        // When the time ids are embedded (the sinusoid of each id, then add_embedding over [text_embeds, ids])
        var sinusoid = addTimeProj.call(timeIds.flatten());
        var augEmb = TextTimeEmbeddingProbe.Compute(unet, fixture.Get("text_embeds"), timeIds);

        // Then the sinusoid is within the README's add_time_proj bound and the aug_emb within the model bound
        double sinusoidError = UNetParityTests.MaxAbsDiff(sinusoid, fixture.Get("intermediate.add_time_proj"));
        double augError = UNetParityTests.MaxAbsDiff(augEmb, fixture.Get("intermediate.add_embedding"));
        TestContext.Out.WriteLine($"add_time_proj max |diff| = {sinusoidError:E2}, add_embedding {augError:E2}");
        Assert.That(sinusoidError, Is.LessThan(1e-4));
        Assert.That(augError, Is.LessThan(TinySdxl.ModelTolerance));
        Assert.That(addEmbedding.named_parameters().Select(p => p.name), Is.EquivalentTo(new[] { "linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias" }));
    }

    [Test]
    public void Constructor_Should_GiveEachBlockItsTransformerDepth_When_TheListIsPerBlock()
    {
        // Given tiny-sdxl's transformer_layers_per_block [1, 2] (down block 1, the mid block and up block 0 have 2 layers)
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        var keys = unet.state_dict().Keys.ToHashSet();

        // Then the keys say so, and down block 0 (a DownBlock2D) has no attention at all
        Assert.That(keys, Does.Contain("down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight"));
        Assert.That(keys, Does.Contain("mid_block.attentions.0.transformer_blocks.1.ff.net.0.proj.weight"));
        Assert.That(keys, Does.Contain("up_blocks.0.attentions.1.transformer_blocks.1.attn1.to_q.weight"));
        Assert.That(keys, Does.Not.Contain("down_blocks.1.attentions.0.transformer_blocks.2.attn1.to_q.weight"));
        Assert.That(keys.Count(k => k.StartsWith("add_embedding.", StringComparison.Ordinal)), Is.EqualTo(4));
        Assert.That(unet.parameters().Sum(p => p.numel()), Is.EqualTo(358_324));
    }

    [Test]
    public void Forward_Should_RefuseNamingTheMissingInputs_When_AnSdxlUNetGetsNoAddedConditions()
    {
        using var scope = torch.NewDisposeScope();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        using var fixture = TinySdxl.Parity("unet");

        var error = Assert.Throws<ArgumentException>(() =>
            unet.call(fixture.Get("sample"), fixture.Get("timesteps"), fixture.Get("encoder_hidden_states")))!;

        Assert.That(error.Message, Does.Contain("text_time").And.Contain("time ids"));
    }

    [TestCase("addition_time_embed_dim", "null")]
    [TestCase("projection_class_embeddings_input_dim", "48")]
    [TestCase("addition_embed_type", "\"image\"")]
    public void Parse_Should_RefuseNamingTheKey_When_TheTextTimeSettingsAreMissingOrInconsistent(string key, string value)
    {
        var config = JObject.Parse(File.ReadAllText(Path.Combine(TinySdxl.Folder, "unet", "config.json")));
        config[key] = JToken.Parse(value);

        var error = Assert.Throws<DiffusersConfigException>(() => UNet2DConditionConfig.Parse(config, "unet/config.json"))!;

        Assert.That(error.Message, Does.Contain($"\"{key}\""));
    }

    [Test]
    public void SaveThenFromFolder_Should_WriteDiffusersConfigKeyForKey_When_TheUNetIsSdxl()
    {
        using var temp = new TempFolder();
        using var original = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        File.Copy(Path.Combine(TinySdxl.Folder, "model_index.json"), temp.File("model_index.json"));

        original.Save(temp.File("unet"));
        using var reloaded = UNet2DConditionModel.FromFolder(SdPipeline.Weights.DiffusersFolder.Open(temp.Path));

        var written = JObject.Parse(File.ReadAllText(temp.File("unet/config.json")));
        var diffusers = JObject.Parse(File.ReadAllText(Path.Combine(TinySdxl.Folder, "unet", "config.json")));
        Assert.That(JToken.DeepEquals(written, diffusers), Is.True, written.ToString());
        Assert.That(reloaded.state_dict().Keys, Is.EqualTo(original.state_dict().Keys));
    }

    // The aug_emb alone, through the same code path the forward uses.
    private static class TextTimeEmbeddingProbe
    {
        public static Tensor Compute(UNet2DConditionModel unet, Tensor textEmbeds, Tensor timeIds)
        {
            var modules = unet.named_children().ToDictionary(c => c.name, c => c.module);
            return TextTimeEmbedding.Compute((Timesteps)modules["add_time_proj"], (TimestepEmbedding)modules["add_embedding"],
                unet.Config.AdditionTimeEmbedDim!.Value, unet.Config.ProjectionClassEmbeddingsInputDim!.Value,
                new AddedConditions(textEmbeds, timeIds), timeIds.shape[0], ScalarType.Float32, torch.CPU);
        }
    }
}
