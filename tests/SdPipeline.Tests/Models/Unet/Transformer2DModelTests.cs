using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>In inference the 1×1 projections run as batched GEMMs on the token layout; the values stay diffusers'.</summary>
public sealed class Transformer2DModelTests
{
    [Test]
    public void Forward_Should_GiveTheConvolutionsValues_When_TheProjectionsRunAsGemmsInInference()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(21);
        var transformer = new Transformer2DModel(numAttentionHeads: 2, attentionHeadDim: 8, inChannels: 16, numLayers: 1,
            crossAttentionDim: 12, normNumGroups: 4, useLinearProjection: false, upcastAttention: false);
        var input = torch.randn(2, 16, 6, 5); // not square: height and width must not swap
        var text = torch.randn(2, 7, 12);

        Tensor inference, convolutions;
        using (torch.no_grad())
        {
            transformer.eval();
            inference = transformer.call(input, text);
            transformer.train();
            convolutions = transformer.call(input, text);
        }

        Assert.That(inference.shape, Is.EqualTo(input.shape));
        Assert.That(inference.allclose(convolutions, rtol: 0, atol: 1e-5), Is.True,
            $"largest difference {(inference - convolutions).abs().max().item<float>():E2}");
        Assert.That(inference.eq(convolutions).all().item<bool>(), Is.False, "a GEMM and a convolution round differently, so the GEMM path ran");
    }

    [Test]
    public void Forward_Should_KeepTheConvolutions_When_AGradientIsRecorded()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(22);
        var transformer = new Transformer2DModel(2, 8, 16, 1, 12, 4, useLinearProjection: false, upcastAttention: false);
        transformer.eval();
        var input = torch.randn(1, 16, 4, 4, requires_grad: true);
        var text = torch.randn(1, 7, 12);

        var output = transformer.call(input, text);
        output.sum().backward();

        Tensor reference;
        using (torch.no_grad())
        {
            transformer.train();
            reference = transformer.call(input, text);
        }
        Assert.That(output.detach().eq(reference).all().item<bool>(), Is.True, "with autograd on, diffusers' convolutions, bit for bit");
        Assert.That(input.grad, Is.Not.Null);
    }
}
