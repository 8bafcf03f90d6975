using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static SdPipeline.Tests.Models.Shared.WinogradTesting;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The inference 3×3 convolution by Winograd's F(2×2, 3×3) on plain-layout inputs (sixteen tiles in the vector lanes)
/// against float64 convolution: partial tile groups at any width, odd heights, batches, with and without bias, several
/// chunks; its accuracy against libtorch's float32 path; which layers <see cref="Convolutions.Apply"/> gives it; the
/// UNet in eval mode runs it.
/// </summary>
public sealed class PlainWinogradConvolutionTests
{
    [SetUp]
    public void RequireAvx512() =>
        Assume.That(WinogradConvolution.IsSupported, "the transforms need AVX-512; libtorch's convolution runs everywhere else");

    // Measured on an Intel Xeon (family 6, model 207), outputs of magnitude ≤ ~5: largest error against float64
    // 0.1–3.9e-6 at 16–512 channels (libtorch's float32 convolution of the same inputs 0.7–1.4e-6).
    private const double Tolerance = 1e-5;

    [TestCase(1, 16, 32, 8, 64, true, TestName = "Convolve_Should_MatchFloat64_When_TileGroupsAreWhole (two groups a row)")]
    [TestCase(2, 32, 16, 33, 47, true, TestName = "Convolve_Should_MatchFloat64_When_SizesAreOdd (partial group and tile, two samples)")]
    [TestCase(1, 48, 64, 6, 20, false, TestName = "Convolve_Should_MatchFloat64_When_NoBias")]
    [TestCase(1, 16, 16, 5, 1, true, TestName = "Convolve_Should_MatchFloat64_When_TheImageIsOneColumn")]
    [TestCase(1, 16, 16, 1, 9, true, TestName = "Convolve_Should_MatchFloat64_When_TheImageIsOneRow")]
    [TestCase(1, 512, 512, 20, 100, true, TestName = "Convolve_Should_MatchFloat64_When_ManyChunks")]
    public void Convolve_Should_MatchFloat64(int batch, int cin, int cout, int height, int width, bool bias)
    {
        // Given a plain-layout input and a convolution with weights of unit-variance outputs
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(5);
        var conv = Convolution(cin, cout, bias);
        conv.weight!.copy_(randn(cout, cin, 3, 3) / Math.Sqrt(9 * cin));
        var x = randn(batch, cin, height, width);

        // When it runs by Winograd's transforms
        Assert.That(PlainWinogradConvolution.Applies(x, conv), Is.True);
        var y = PlainWinogradConvolution.Convolve(x, conv);

        // Then the output is a plain [B, C_out, H, W] within float32 rounding of float64
        AssertPlainAndNearFloat64(y, x, conv, Tolerance);
    }

    [Test]
    public void Convolve_Should_MatchFloat64_When_TheWeightIsTransformedInBlocksOfOutputChannels()
    {
        // Given a layer whose transformed weight (16 × 528 × 1024 floats, 33 MiB) is over the 32 MiB a block may take
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(7);
        var conv = Convolution(1024, 528);
        conv.weight!.copy_(randn(528, 1024, 3, 3) / Math.Sqrt(9 * 1024));
        var x = randn(2, 1024, 6, 5);
        Assert.That(WinogradConvolution.OutputBlock(1024, 528), Is.EqualTo(272), "two blocks, multiples of 16");

        // When it runs
        var y = PlainWinogradConvolution.Convolve(x, conv);

        // Then every block's channels, bias included, are within float32 rounding of float64
        double error = Error(y, Float64(x, conv));
        TestContext.Out.WriteLine($"largest error against float64: {error:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    [TestCase(320, 320, 320)]
    [TestCase(1920, 640, 224)]
    [TestCase(1280, 1280, 320)]
    public void OutputBlock_Should_SplitOnlyWeightsOverTheLimit_IntoEqualBlocks(long cin, long cout, long expected) =>
        Assert.That(WinogradConvolution.OutputBlock(cin, cout), Is.EqualTo(expected));

    [Test]
    public void Convolve_Should_BeAsAccurateAsLibtorch_When_WidthIsTheUnets()
    {
        // Given a 320-channel UNet-sized convolution, in float32 and float64
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(6);
        var conv = Convolution(320, 320);
        conv.weight!.copy_(randn(320, 320, 3, 3) / Math.Sqrt(9 * 320));
        var x = randn(2, 320, 32, 32);
        var expected = Float64(x, conv);

        // When both the Winograd path and libtorch's convolution run
        double winograd = Error(PlainWinogradConvolution.Convolve(x, conv), expected);
        double libtorch = Error(conv.call(x), expected);

        // Then Winograd's transforms lose at most a few float32 roundings more (measured on outputs of magnitude ~4:
        // 2.0–3.9e-6 against oneDNN's 0.8–1.4e-6; 8e-6 is 2e-6 of the outputs' scale, ~16 float32 steps)
        TestContext.Out.WriteLine($"largest error against float64: Winograd {winograd:E2}, libtorch {libtorch:E2}");
        Assert.That(winograd, Is.LessThan(Math.Max(4 * libtorch, 8e-6)));
    }

    [Test]
    public void Convolve_Should_PropagateNaN()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var conv = Convolution(16, 16);
        var x = zeros(1, 16, 6, 40);
        x[0, 3, 2, 20] = tensor(float.NaN);
        var y = PlainWinogradConvolution.Convolve(x, conv);
        // Every output whose 3×3 window holds the NaN (rows 1–3, columns 19–21) is NaN, as in a direct convolution.
        Assert.That(y[.., .., 1..4, 19..22].isnan().all().item<bool>(), Is.True);
        Assert.That(y[.., .., 4.., ..].isnan().any().item<bool>(), Is.False);
        Assert.That(y[.., .., .., ..19].isnan().any().item<bool>(), Is.False);
        Assert.That(y[.., .., .., 22..].isnan().any().item<bool>(), Is.False);
    }

    [Test]
    public void Applies_Should_TakeOnlyStrideOnePaddedThreeByThreeConvolutionsOfPlainInputs()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(1, 32, 8, 8);
        Assert.That(PlainWinogradConvolution.Applies(x, Convolution(32, 32)), Is.True);
        var channelsLast = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        Assert.That(PlainWinogradConvolution.Applies(channelsLast, Convolution(32, 32)), Is.False, "channels-last (WinogradConvolution's)");
        Assert.That(PlainWinogradConvolution.Applies(x, Convolution(32, 32, stride: 2)), Is.False, "stride 2 (the downsamplers)");
        Assert.That(PlainWinogradConvolution.Applies(x, Convolution(32, 32, kernel: 1, padding: 0)), Is.False, "1×1");
        Assert.That(PlainWinogradConvolution.Applies(randn(1, 8, 8, 8), Convolution(8, 32)), Is.False, "input channels not a multiple of 16");
        Assert.That(PlainWinogradConvolution.Applies(randn(1, 16, 4, 513), Convolution(16, 16)), Is.False, "wider than 512 columns");
        using (enable_grad())
            Assert.That(PlainWinogradConvolution.Applies(x, Convolution(32, 32)), Is.False, "a weight that needs a gradient, with autograd on");
    }

    [TestCase(32, true)]
    [TestCase(64, true)]
    [TestCase(16, false)] // 16×16 and below: slower than oneDNN (docs/performance.md)
    public void Apply_Should_UseWinograd_When_InInferenceAtThirtyTwoByThirtyTwoOrMore(int size, bool winograd)
    {
        // Given a convolution and a plain-layout input
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(7);
        var conv = Convolution(32, 32);
        var x = randn(1, 32, size, size);
        var byWinograd = PlainWinogradConvolution.Convolve(x, conv);
        var byLayer = conv.call(x);
        Assume.That(Same(byWinograd, byLayer), Is.False, "both paths gave the same bits here: the path taken cannot be told");

        // Then in inference it runs by Winograd at 32×32 and above (bit for bit the kernel's result; on AMD's CPUs at
        // 16×16 the channels-last kernel's), outside inference and below that size as the layer is
        var expected = Convolutions.PrefersChannelsLastWinograd(x, conv) ? WinogradConvolution.ConvolvePlain(x, conv) : winograd ? byWinograd : byLayer;
        Assert.That(Same(Convolutions.Apply(conv, x, inference: true), expected), Is.True);
        Assert.That(Same(Convolutions.Apply(conv, x, inference: false), byLayer), Is.True);
    }

    [Test]
    public void Apply_Should_CallTheLayer_When_AHookWatchesIt()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var conv = Convolution(32, 32);
        var x = randn(1, 32, 32, 32);
        int calls = 0;
        var hook = conv.register_forward_hook((_, _, output) =>
        {
            calls++;
            return output;
        });

        var y = Convolutions.Apply(conv, x, inference: true);

        Assert.That(calls, Is.EqualTo(1));
        Assert.That(Same(y, conv.call(x)), Is.True);
        hook.remove();
    }

    [Test]
    public void Unet_Should_RunItsConvolutionsByWinograd_When_InInference()
    {
        // Given the tiny UNet in eval mode and 32×32 latents (its first level's convolutions are 32×32, 32 channels)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        unet.eval();
        manual_seed(43);
        var sample = randn(1, 4, 32, 32);
        var timestep = full([1], 500L);
        var text = randn(1, 77, unet.Config.CrossAttentionDim);

        // When it runs as it is, and with a no-op hook on every convolution (each layer called as it is)
        var output = unet.call(sample, timestep, text);
        var removers = unet.modules().OfType<Conv2d>().Select(c => c.register_forward_hook((_, _, o) => o)).ToList();
        var byLayers = unet.call(sample, timestep, text);
        removers.ForEach(r => r.remove());

        // Then the two differ (the resnets' convolutions at 32×32 ran by Winograd) by float32 rounding only
        double difference = (output - byLayers).abs().max().item<float>();
        TestContext.Out.WriteLine($"Winograd against the layers: {difference:E2} (outputs up to {byLayers.abs().max().item<float>():F2})");
        Assert.That(difference, Is.GreaterThan(0).And.LessThan(Tolerance));
    }
}
