using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>An up block consumes the feature map and skip connections it is given, so neither outlives its reading.</summary>
public sealed class UpBlockTests
{
    [Test]
    public void Forward_Should_DisposeItsInputs_When_ItHasReadThem()
    {
        // Given an up block of two resnets and an upsampler, its input and two skip connections
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(2);
        var block = new UpBlock2D(inChannels: 16, outChannels: 32, prevOutputChannel: 32, tembChannels: 64, numLayers: 2, addUpsample: true,
            groups: 8, eps: 1e-5, dropout: 0);
        block.eval();
        var hidden = randn(1, 32, 4, 4);
        Tensor[] residuals = [randn(1, 16, 4, 4), randn(1, 32, 4, 4)];

        // When it runs
        var output = block.Forward(hidden, residuals, randn(1, 64), randn(1, 77, 8), upsampleSize: null);

        // Then its output is the upsampled map, and what it was given has been freed
        Assert.That(output.shape, Is.EqualTo(new long[] { 1, 32, 8, 8 }));
        Assert.That(hidden.IsInvalid, Is.True, "the incoming feature map");
        Assert.That(residuals.Select(r => r.IsInvalid), Is.All.True, "the skip connections");
    }
}
