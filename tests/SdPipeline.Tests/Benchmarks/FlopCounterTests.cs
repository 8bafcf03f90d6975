using SdPipeline.Benchmarks;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Benchmarks;

public sealed class FlopCounterTests
{
    private static UNet2DConditionConfig TinyUnet => UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "unet", "config.json"));

    [Test]
    public void Count_Should_MatchHandComputedFlops_When_OneConvolutionOneLinearAndOneAttentionRun()
    {
        // Given one convolution, one linear layer and one cross-attention with small, known shapes
        using var scope = torch.NewDisposeScope();
        using var conv = nn.Conv2d(3, 8, 3, stride: 2, padding: 1);
        using var linear = nn.Linear(6, 4);
        using var attention = new Attention(queryDim: 16, crossAttentionDim: 12, heads: 2, dimHead: 8, bias: false, upcast: false);
        var image = torch.randn(2, 3, 9, 9);
        var tokens = torch.randn(2, 3, 6);
        var hidden = torch.randn(1, 10, 16);
        var context = torch.randn(1, 7, 12);

        // When each runs once under a counter, without autograd
        FlopCount convCount, linearCount, attentionCount;
        using (torch.no_grad())
        {
            convCount = FlopCounter.Count(conv, () => conv.call(image));
            linearCount = FlopCounter.Count(linear, () => linear.call(tokens));
            attentionCount = FlopCounter.Count(attention, () => attention.call(hidden, context));
        }

        // Then the counts are 2·MACs: conv 2·N·Cout·Cin·kh·kw·Hout·Wout with Hout = Wout = 5
        Assert.That(convCount.Forward, Is.EqualTo(2.0 * 2 * 8 * 3 * 3 * 3 * 5 * 5));
        Assert.That(linearCount.Forward, Is.EqualTo(2.0 * (2 * 3) * 6 * 4));
        // to_q and to_out over 10 tokens, to_k and to_v over 7 context tokens, and the two attention matmuls
        double projections = 2.0 * 10 * 16 * 16 * 2 + 2.0 * 7 * 12 * 16 * 2;
        double matmuls = 2 * 2.0 * 1 * 2 * 10 * 7 * 8;
        Assert.That(attentionCount.LinearForward, Is.EqualTo(projections));
        Assert.That(attentionCount.AttentionForward, Is.EqualTo(matmuls));
        Assert.That(convCount.Backward + linearCount.Backward + attentionCount.Backward, Is.Zero, "no autograd, no backward");
    }

    [Test]
    public void Count_Should_SkipGradInput_When_TheLayerInputNeedsNoGradient()
    {
        // Given a linear layer that trains, fed once by a leaf input and once by an input that needs a gradient
        using var scope = torch.NewDisposeScope();
        using var linear = nn.Linear(6, 4);
        var plain = torch.randn(5, 6);
        var tracked = torch.randn(5, 6, requires_grad: true);

        // When both run with autograd on, and the weight is then frozen
        var fromPlain = FlopCounter.Count(linear, () => linear.call(plain));
        var fromTracked = FlopCounter.Count(linear, () => linear.call(tracked));
        linear.weight.requires_grad = false;
        linear.bias!.requires_grad = false;
        var frozen = FlopCounter.Count(linear, () => linear.call(tracked));

        // Then backward costs grad-weight only (1×), grad-weight + grad-input (2×), grad-input only (1×)
        double forward = 2.0 * 5 * 6 * 4;
        Assert.That(fromPlain.Backward, Is.EqualTo(forward));
        Assert.That(fromTracked.Backward, Is.EqualTo(2 * forward));
        Assert.That(frozen.Backward, Is.EqualTo(forward));
    }

    [Test]
    public void Count_Should_EqualTheArchitectureWorkedOutByHand_When_TheTinyUnetRuns()
    {
        // Given the tiny fixture UNet and an 8×8 latent batch of 2
        var config = TinyUnet;
        torch.manual_seed(0);
        using var unet = new UNet2DConditionModel(config);
        using var scope = torch.NewDisposeScope();
        var sample = torch.randn(2, 4, 8, 8);
        var text = torch.randn(2, 77, config.CrossAttentionDim);

        // When a real forward runs under the counter with autograd on
        var count = FlopCounter.Count(unet, () => unet.call(sample, torch.tensor(10L), text));

        // Then the forward equals the block-by-block arithmetic, and backward is 2× forward except for the layers
        // whose input needs no gradient (conv_in, time_embedding.linear_1, to_k/to_v over the text embeddings)
        var expected = UNetFlopArithmetic.Of(config, size: 8, batch: 2);
        Assert.That(count.Forward, Is.EqualTo(expected.Forward));
        Assert.That(count.Backward, Is.EqualTo(2 * expected.Forward - expected.WithoutGradInput));
    }

    [TestCase(8, 8)]
    [TestCase(9, 7)]
    public void ShapesOnlyCount_Should_EqualTheRealForwardCount_When_TheTinyUnetRuns(int height, int width)
    {
        // Given the tiny UNet and a latent batch (7 and 9 do not halve evenly: the upsamplers get explicit sizes)
        torch.manual_seed(0);
        using var unet = new UNet2DConditionModel(TinyUnet);
        using var scope = torch.NewDisposeScope();
        var sample = torch.randn(2, 4, height, width);
        var text = torch.randn(2, 5, 32);
        Tensor Forward() => unet.call(sample, torch.tensor(10L), text);

        // When it is counted once with real arithmetic and once shapes-only
        FlopCount real, shapesOnly;
        long[] realShape, shapesOnlyShape;
        using (var counter = FlopCounter.Attach(unet)) { realShape = Forward().shape; real = counter.Total; }
        using (var counter = FlopCounter.Attach(unet, shapesOnly: true)) { shapesOnlyShape = Forward().shape; shapesOnly = counter.Total; }

        // Then both counts, and the output shapes, are the same
        Assert.That(shapesOnly, Is.EqualTo(real));
        Assert.That(shapesOnlyShape, Is.EqualTo(realShape));
        Assert.That(real.Forward, Is.GreaterThan(0));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void ShapesOnlyCount_Should_EqualTheRealForwardCount_When_TheTinyVaeEncodesAndDecodes(bool autograd)
    {
        // Given the tiny fixture VAE (its encoder pads asymmetrically before stride-2 convolutions with padding 0;
        // its mid-block attention takes [B, C, H, W] and has its own trainable GroupNorm)
        var config = AutoencoderKLConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "vae", "config.json"));
        torch.manual_seed(0);
        using var vae = new AutoencoderKL(config);
        using var scope = torch.NewDisposeScope();
        using var mode = torch.set_grad_enabled(autograd);
        var image = torch.rand(1, 3, 30, 30) * 2 - 1;
        void Run() => vae.Decode(vae.Encode(image).Mode());

        // When it is counted with real arithmetic and shapes-only
        var real = FlopCounter.Count(vae, Run);
        var shapesOnly = FlopCounter.Count(vae, Run, shapesOnly: true);

        // Then the counts agree, backward included, and the attention over the pixels was counted
        Assert.That(shapesOnly, Is.EqualTo(real));
        Assert.That(real.AttentionForward, Is.GreaterThan(0));
        Assert.That(real.Backward, autograd ? Is.GreaterThan(0) : Is.Zero);
    }

    [Test]
    public void Sd15Unet_Should_CountPyTorchsFlops_When_LatentsAre32And64()
    {
        // Given the SD 1.5 UNet, built on meta and given storage without initialising it (the values are never used)
        using var unet = new UNet2DConditionModel(Sd15Configs.Unet, new Device(DeviceType.META));
        MetaModules.ToEmpty(unet, torch.CPU);

        // When a batch of 1 is counted shapes-only at 32×32 (with autograd, for the backward) and 64×64
        FlopCount Count(int size, bool grad)
        {
            using var scope = torch.NewDisposeScope();
            using var mode = torch.set_grad_enabled(grad);
            return FlopCounter.Count(unet, () => unet.call(torch.zeros(1, 4, size, size), torch.tensor(10L), torch.zeros(1, 77, 768)), shapesOnly: true);
        }
        var at32 = Count(32, grad: true);
        var at64 = Count(64, grad: false);

        // Then they match PyTorch's flop counter (docs: 180 / 803 GFLOP forward, about 537 forward+backward at 32×32)
        // and the hand arithmetic exactly
        Assert.That(at32.Forward / 1e9, Is.EqualTo(180).Within(3).Percent);
        Assert.That(at64.Forward / 1e9, Is.EqualTo(803).Within(3).Percent);
        Assert.That(at32.ForwardBackward / 1e9, Is.EqualTo(537).Within(3).Percent);
        Assert.That(at32.Forward, Is.EqualTo(UNetFlopArithmetic.Of(Sd15Configs.Unet, 32).Forward));
        Assert.That(at64.Forward, Is.EqualTo(UNetFlopArithmetic.Of(Sd15Configs.Unet, 64).Forward));
    }

    [Test]
    public void Dispose_Should_RemoveTheHooks()
    {
        // Given a counter that has counted one call and is then disposed
        using var scope = torch.NewDisposeScope();
        using var linear = nn.Linear(6, 4);
        var input = torch.randn(3, 6);
        var counter = FlopCounter.Attach(linear);
        linear.call(input);
        counter.Dispose();

        // When the layer runs again
        linear.call(input);

        // Then nothing more was counted
        Assert.That(counter.Records, Has.Count.EqualTo(1));
        Assert.That(counter.Records[0].Module, Is.Empty);
    }
}
