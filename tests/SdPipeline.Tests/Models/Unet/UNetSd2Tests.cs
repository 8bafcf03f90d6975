using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>The Stable Diffusion 2.x options: linear transformer projections, per-block head counts, 1024-wide text embeddings, upcast attention.</summary>
public sealed class UNetSd2Tests
{
    // SD 2.x's unet/config.json differs from SD 1.5's in exactly these keys.
    private static readonly UNet2DConditionConfig Sd2 = new()
    {
        SampleSize = [96],
        CrossAttentionDim = 1024,
        AttentionHeadDim = [5, 10, 20, 20],
        UseLinearProjection = true,
        UpcastAttention = true,
    };

    [Test]
    public void StateDict_Should_HaveLinearProjectionsAnd1024WideCrossAttention_When_BuiltFromAnSd2Config()
    {
        using var unet = new UNet2DConditionModel(Sd2, new Device(DeviceType.META));

        var shapes = unet.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);
        Assert.That(shapes["down_blocks.0.attentions.0.proj_in.weight"], Is.EqualTo(new long[] { 320, 320 }));
        Assert.That(shapes["mid_block.attentions.0.proj_out.weight"], Is.EqualTo(new long[] { 1280, 1280 }));
        Assert.That(shapes["up_blocks.3.attentions.2.proj_in.weight"], Is.EqualTo(new long[] { 320, 320 }));
        Assert.That(shapes["down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight"], Is.EqualTo(new long[] { 640, 1024 }));
        Assert.That(shapes.Count, Is.EqualTo(686));
        // The SD 2.x UNet's published size.
        Assert.That(unet.parameters().Sum(p => p.NumberOfElements), Is.EqualTo(865_910_724L));
    }

    [Test]
    public void Heads_Should_FollowThePerBlockList_AndItsReverseInTheUpBlocks()
    {
        using var unet = new UNet2DConditionModel(Sd2, new Device(DeviceType.META));
        var modules = unet.named_modules().ToDictionary(m => m.name, m => m.module);
        long Heads(string block) => ((Attention)modules[$"{block}.attentions.0.transformer_blocks.0.attn1"]).Heads;

        Assert.That(new[] { "down_blocks.0", "down_blocks.1", "down_blocks.2", "mid_block" }.Select(Heads), Is.EqualTo(new long[] { 5, 10, 20, 20 }));
        Assert.That(new[] { "up_blocks.1", "up_blocks.2", "up_blocks.3" }.Select(Heads), Is.EqualTo(new long[] { 20, 10, 5 }));
    }

    [Test]
    public void Forward_Should_PredictNoiseOfTheSampleShape_When_Sd2OptionsAreUsedAtTinySize()
    {
        // Given a freshly initialised UNet with every SD 2.x option at an eighth of SD 2.x's width
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        torch.manual_seed(0);
        var config = Sd2 with { BlockOutChannels = [40, 80, 160, 160], NormNumGroups = 8, LayersPerBlock = 1 };
        using var unet = new UNet2DConditionModel(config);
        unet.eval();

        // When it predicts for a latent whose size is not a multiple of 8 (the upsamplers get explicit sizes)
        var sample = torch.randn(2, 4, 12, 10);
        var output = unet.call(sample, torch.tensor(new long[] { 1, 999 }), torch.randn(2, 77, 1024));

        Assert.That(output.shape, Is.EqualTo(sample.shape));
        Assert.That(torch.isfinite(output).all().item<bool>(), Is.True);
    }
}
