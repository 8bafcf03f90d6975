using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>Sampling (no autograd) runs the transformer MLP in blocks of tokens; each token's result is the same to float32 rounding.</summary>
public sealed class FeedForwardTests
{
    [TestCase(2, 2048, 320, TestName = "Forward_Should_MatchTheUnblockedForm_When_RunInBlocksWithoutAutograd (3 blocks, SD 1.5's 64×64 width)")]
    [TestCase(1, 1000, 1280, TestName = "Forward_Should_MatchTheUnblockedForm_When_RunInBlocksWithoutAutograd (uneven blocks)")]
    [TestCase(2, 77, 320, TestName = "Forward_Should_MatchTheUnblockedForm_When_OneBlockHoldsThemAll")]
    public void Forward_Should_MatchTheUnblockedForm(int batch, int tokens, int dim)
    {
        // Given a feed-forward of SD's form and tokens whose projection is larger than one block (16 MiB) or not
        using var scope = NewDisposeScope();
        manual_seed(4);
        var ff = new FeedForward(dim);
        var input = randn(batch, tokens, dim);
        var inputBefore = input.clone();

        // When it runs with autograd (all tokens at once, training's form) and without (sampling's form)
        var trained = ff.call(input);
        Tensor sampled;
        using (no_grad()) sampled = ff.call(input);

        // Then every token's output is the same and the input is untouched
        Assert.That(sampled.shape, Is.EqualTo(new long[] { batch, tokens, dim }));
        double difference = (sampled - trained.detach()).abs().max().item<float>();
        TestContext.Out.WriteLine($"largest difference: {difference:E2}");
        // Measured on an Intel Xeon (family 6, model 207): 0 with one block, 0.6–3.0e-7 in blocks (libtorch's GEMM
        // sums in an order that depends on the row count) on outputs of magnitude ~1; 2e-6 is a few float32 steps more.
        Assert.That(difference, Is.LessThanOrEqualTo(2e-6));
        Assert.That(input.eq(inputBefore).all().item<bool>(), Is.True);
    }
}
