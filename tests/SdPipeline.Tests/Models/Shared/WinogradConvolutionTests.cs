using SdPipeline.Models.Shared;
using SdPipeline.Models.Vae;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static SdPipeline.Tests.Models.Shared.WinogradTesting;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The inference 3×3 convolution by Winograd's F(2×2, 3×3) against float64 convolution: partial tiles at odd sizes,
/// batches, with and without bias, weights plain or channels-last; its accuracy against libtorch's float32 path; which
/// layers <see cref="Convolutions.Apply"/> gives it, and that a hooked layer (LoRA, the FLOP counter) keeps its hooks.
/// </summary>
public sealed class WinogradConvolutionTests
{
    [SetUp]
    public void RequireAvx512() =>
        Assume.That(WinogradConvolution.IsSupported, "the transforms need AVX-512; libtorch's convolution runs everywhere else");

    // Measured on an Intel Xeon (family 6, model 207), outputs of magnitude ≤ ~5: largest error against float64 1–4e-6
    // at 128–1280 channels, where oneDNN's float32 convolution of the same channels-last input is 0.8–1.6e-5 off.
    private const double Tolerance = 1e-5;

    private static Tensor ChannelsLast(Tensor x) => x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);

    // A 128 → 128 convolution (the VAE's first level) with weights of unit-variance outputs, and a channels-last input.
    private static (Conv2d Conv, Tensor X) VaeWidthCase(int seed, int height, int width)
    {
        manual_seed(seed);
        var conv = Convolution(128, 128);
        conv.weight!.copy_(randn(128, 128, 3, 3) / Math.Sqrt(9 * 128));
        return (conv, ChannelsLast(randn(1, 128, height, width)));
    }

    [TestCase(1, 16, 32, 8, 8, true, false, TestName = "Convolve_Should_MatchFloat64_When_WholeTiles")]
    [TestCase(2, 32, 16, 7, 9, true, false, TestName = "Convolve_Should_MatchFloat64_When_SizesAreOdd (partial tiles, two samples)")]
    [TestCase(1, 48, 64, 5, 3, false, false, TestName = "Convolve_Should_MatchFloat64_When_NoBias")]
    [TestCase(1, 32, 32, 6, 10, true, true, TestName = "Convolve_Should_MatchFloat64_When_WeightIsChannelsLast")]
    [TestCase(1, 128, 128, 40, 24, true, true, TestName = "Convolve_Should_MatchFloat64_When_ManyChunks (VAE width)")]
    [TestCase(1, 16, 16, 1, 2, true, false, TestName = "Convolve_Should_MatchFloat64_When_TheImageIsOneRow")]
    public void Convolve_Should_MatchFloat64(int batch, int cin, int cout, int height, int width, bool bias, bool channelsLastWeight)
    {
        // Given a channels-last input and a convolution with weights of unit-variance outputs
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(5);
        var conv = Convolution(cin, cout, bias);
        conv.weight!.copy_(randn(cout, cin, 3, 3) / Math.Sqrt(9 * cin));
        if (channelsLastWeight) conv.weight.set_(ChannelsLast(conv.weight.detach().clone()));
        var x = ChannelsLast(randn(batch, cin, height, width));

        // When it runs by Winograd's transforms
        Assert.That(WinogradConvolution.Applies(x, conv), Is.True);
        var y = WinogradConvolution.Convolve(x, conv);

        // Then the output is [B, C_out, H, W] stored channels-last, within float32 rounding of float64
        Assert.That(y.shape, Is.EqualTo(new long[] { batch, cout, height, width }));
        Assert.That(KernelTensors.ChannelsLast(y), Is.True, "channels-last, as oneDNN returns it");
        double error = Error(y, Float64(x, conv));
        TestContext.Out.WriteLine($"largest error against float64: {error:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    // Tiles of 16 float32 values a channel; a budget of n tiles of `width` channels, or of n output channels of U.
    private static long TileBytes(long tiles, long width) => tiles * 16 * sizeof(float) * width;

    [TestCase(2, 32, 48, 9, 11, 64L << 20, 64L << 20, TestName = "ConvolvePlain_Should_MatchFloat64_When_OneChunkAndOneBlock (odd sizes, two samples)")]
    [TestCase(1, 32, 48, 9, 11, 5L, 64L << 20, TestName = "ConvolvePlain_Should_MatchFloat64_When_ManyChunks")]
    [TestCase(1, 32, 48, 9, 11, 64L << 20, 16L, TestName = "ConvolvePlain_Should_MatchFloat64_When_OneChunkServesEveryBlock")]
    [TestCase(2, 32, 48, 7, 6, 5L, 16L, TestName = "ConvolvePlain_Should_MatchFloat64_When_ManyChunksAndBlocks")]
    public void ConvolvePlain_Should_MatchFloat64(int batch, int cin, int cout, int height, int width, long chunk, long block)
    {
        // Given a plain-layout input, and V's chunks and U's blocks as given (small numbers are tiles and output channels)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(8);
        var conv = Convolution(cin, cout);
        conv.weight!.copy_(randn(cout, cin, 3, 3) / Math.Sqrt(9 * cin));
        var x = randn(batch, cin, height, width);
        long chunkBytes = chunk < 1024 ? TileBytes(chunk, Math.Max(cin, cout)) : chunk;
        long weightBytes = block < 1024 ? TileBytes(block, cin) : block;

        // When it runs through a channels-last copy
        var y = WinogradConvolution.ConvolvePlain(x, conv, chunkBytes, weightBytes);

        // Then the output is [B, C_out, H, W] in the plain layout, within float32 rounding of float64, every block's
        // channels with their own bias
        AssertPlainAndNearFloat64(y, x, conv, Tolerance);
    }

    [TestCase("amd", TestName = "Convolve_Should_MatchFloat64AndBmm_UnderAmdsRules_When_TheLastChunkIsPartial (products on the micro-kernel)")]
    [TestCase("intel", TestName = "Convolve_Should_MatchFloat64AndBmm_UnderIntelsRules_When_TheLastChunkIsPartial (products by bmm)")]
    public void Convolve_Should_MatchFloat64AndBmm_UnderEachVendorsRules(string vendor)
    {
        // Given a VAE-width channels-last input of 25 × 23 = 575 tiles (a chunk of 512 and one of 63, a narrower view of
        // V), its output by bmm's products, and one vendor's rules on this CPU
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (conv, x) = VaeWidthCase(seed: 12, height: 50, width: 46);
        Tensor byBmm, y;
        try
        {
            InferenceKernels.Use("intel");
            Assert.That(BatchedProduct.Preferred, Is.False, "Intel's rules leave the products to bmm");
            byBmm = WinogradConvolution.Convolve(x, conv);
            InferenceKernels.Use(vendor);
            if (vendor == "amd") Assume.That(BatchedProduct.Preferred, "libtorch exports no brgemm here");

            // When the convolution runs
            y = WinogradConvolution.Convolve(x, conv);
        }
        finally { InferenceKernels.Use("auto"); }

        // Then it is within float32 rounding of float64, and of the output by bmm's products
        double error = Error(y, Float64(x, conv));
        double fromBmm = (y.to(ScalarType.Float64) - byBmm.to(ScalarType.Float64)).abs().max().item<double>();
        TestContext.Out.WriteLine($"largest error against float64: {error:E2}; largest difference from bmm's products: {fromBmm:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
        Assert.That(fromBmm, Is.LessThan(Tolerance));
    }

    [Test]
    public void ConvolvePlain_Should_MatchTheChannelsLastKernel_When_TheBudgetsAreTheDefaults()
    {
        // Given a plain input whose tiles fit one chunk at either budget
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(9);
        var conv = Convolution(64, 32);
        var x = randn(1, 64, 12, 12);

        // Then the plain-input entry computes what the channels-last one does on a channels-last copy, to the bit
        Assert.That(Same(WinogradConvolution.ConvolvePlain(x, conv), WinogradConvolution.Convolve(ChannelsLast(x), conv)), Is.True);
    }

    [Test]
    public void ChannelsLastWinogradPositions_Should_Be16x16_OnAmd_And_None_OnIntel()
    {
        // Measured on a Zen 4 only (docs/performance.md); Intel's CPUs keep the plain-layout kernel and oneDNN
        Assert.That(Convolutions.ChannelsLastWinogradPositions(amd: true), Is.EqualTo((16L * 16, 16L * 16)));
        var (least, most) = Convolutions.ChannelsLastWinogradPositions(amd: false);
        Assert.That(least, Is.GreaterThan(most), "an empty range");
    }

    [TestCase(8)]
    [TestCase(16)]
    [TestCase(32)]
    [TestCase(64)]
    public void Apply_Should_TakeTheChannelsLastKernel_OnAmdAt16x16(int size)
    {
        // Given a plain-layout input at this size
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(10);
        var conv = Convolution(32, 32);
        var x = randn(1, 32, size, size);
        bool expected = Convolutions.OnAmd && size == 16;

        // Then this CPU's rule picks the channels-last kernel where measured faster, and Apply runs it (to the bit)
        Assert.That(Convolutions.PrefersChannelsLastWinograd(x, conv), Is.EqualTo(expected));
        Assert.That(Convolutions.Choose(x, conv) == ConvolutionPath.ChannelsLastWinograd, Is.EqualTo(expected));
        if (expected) Assert.That(Same(Convolutions.Apply(conv, x, inference: true), WinogradConvolution.ConvolvePlain(x, conv)), Is.True);
    }

    [Test]
    public void TransformWeight_Should_BeGgGtRoundedOnce_InEitherLayout_When_TheWeightIsPlainOrChannelsLast()
    {
        // Given a weight (48 input channels: three blocks of sixteen lanes), and G g Gᵀ formed by libtorch in float64,
        // where the sums of float32 products by ½ are exact, so any order of them rounds to the same float32
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(11);
        var weight = randn(32, 48, 3, 3);
        var g = tensor(new double[] { 1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1 }).view(4, 3);
        var expected = g.matmul(weight.to(ScalarType.Float64)).matmul(g.t()).to(ScalarType.Float32) // [C_out, C_in, 4, 4]
            .permute(2, 3, 0, 1).reshape(16, 32, 48);

        // Then the kernel's transform is that, to the bit, from the plain layout and from channels-last
        Assert.That(Same(WinogradConvolution.TransformWeight(weight), expected), Is.True, "plain");
        Assert.That(Same(WinogradConvolution.TransformWeight(ChannelsLast(weight)), expected), Is.True, "channels-last");

        // And the transposed layout [16, C_in, C_out] holds the same values, also for a block of output channels (a view
        // that starts inside the weight)
        Assert.That(Same(WinogradConvolution.TransformWeightTransposed(weight), expected.transpose(1, 2)), Is.True, "transposed, plain");
        Assert.That(Same(WinogradConvolution.TransformWeightTransposed(ChannelsLast(weight)), expected.transpose(1, 2)), Is.True, "transposed, channels-last");
        Assert.That(Same(WinogradConvolution.TransformWeightTransposed(weight.narrow(0, 16, 16)), expected.narrow(1, 16, 16).transpose(1, 2)), Is.True,
            "transposed, a block");
    }

    [Test]
    public void Convolve_Should_BeAsAccurateAsLibtorch_When_WidthIsTheVaes()
    {
        // Given a 128-channel VAE-sized convolution of a channels-last input, in float32 and float64
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (conv, x) = VaeWidthCase(seed: 6, height: 32, width: 32);
        var expected = Float64(x, conv);

        // When both the Winograd path and libtorch's convolution run
        double winograd = Error(WinogradConvolution.Convolve(x, conv), expected);
        double libtorch = Error(conv.call(x), expected);

        // Then Winograd's transforms lose nothing beyond what libtorch's float32 arithmetic does (measured: 1.5e-6 against 3.8e-6)
        TestContext.Out.WriteLine($"largest error against float64: Winograd {winograd:E2}, libtorch {libtorch:E2}");
        Assert.That(winograd, Is.LessThan(Math.Max(2 * libtorch, 2e-6)));
    }

    [Test]
    public void Convolve_Should_PropagateNaN()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var conv = Convolution(16, 16);
        var x = ChannelsLast(zeros(1, 16, 6, 6));
        x[0, 3, 2, 2] = tensor(float.NaN);
        var y = WinogradConvolution.Convolve(x, conv);
        // Every output whose 3×3 window holds the NaN (rows and columns 1–3) is NaN, as in a direct convolution.
        Assert.That(y[.., .., 1..4, 1..4].isnan().all().item<bool>(), Is.True);
        Assert.That(y[.., .., 4.., ..].isnan().any().item<bool>(), Is.False);
    }

    [Test]
    public void Applies_Should_TakeOnlyStrideOnePaddedThreeByThreeConvolutionsOfChannelsLastInputs()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = ChannelsLast(randn(1, 32, 8, 8));
        Assert.That(WinogradConvolution.Applies(x, Convolution(32, 32)), Is.True);
        Assert.That(WinogradConvolution.Applies(x.contiguous(), Convolution(32, 32)), Is.False, "plain layout");
        Assert.That(WinogradConvolution.Applies(x, Convolution(32, 32, stride: 2)), Is.False, "stride 2 (the downsamplers)");
        Assert.That(WinogradConvolution.Applies(x, Convolution(32, 32, padding: 0)), Is.False, "no padding");
        Assert.That(WinogradConvolution.Applies(x, Convolution(32, 32, kernel: 1, padding: 0)), Is.False, "1×1");
        Assert.That(WinogradConvolution.Applies(x, Convolution(32, 8)), Is.False, "output channels not a multiple of 16");
        var narrow = ChannelsLast(randn(1, 8, 8, 8));
        Assert.That(WinogradConvolution.Applies(narrow, Convolution(8, 32)), Is.False, "input channels not a multiple of 16");
        Assert.That(WinogradConvolution.Applies(x.to(ScalarType.Float64), Convolution(32, 32).to(ScalarType.Float64)), Is.False, "float64");
        using (enable_grad())
        {
            var trained = Convolution(32, 32);
            Assert.That(WinogradConvolution.Applies(x, trained), Is.False, "a weight that needs a gradient, with autograd on");
        }
    }

    [Test]
    public void Apply_Should_UseWinograd_When_InInferenceAndNoHookWatchesTheLayer()
    {
        // Given a convolution and a channels-last input
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        manual_seed(7);
        var conv = Convolution(32, 32);
        var x = ChannelsLast(randn(1, 32, 10, 10));

        // Then in inference it runs by Winograd (bit for bit the kernel's result), outside inference as the layer is
        Assert.That(Convolutions.HasHooks(conv), Is.False);
        Assert.That(Same(Convolutions.Apply(conv, x, inference: true), WinogradConvolution.Convolve(x, conv)), Is.True);
        Assert.That(Same(Convolutions.Apply(conv, x, inference: false), conv.call(x)), Is.True);
    }

    [Test]
    public void Apply_Should_CallTheLayer_When_AHookWatchesIt()
    {
        // Given a convolution with a forward hook (as a LoRA adapter or the FLOP counter attaches)
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var conv = Convolution(32, 32);
        var x = ChannelsLast(randn(1, 32, 10, 10));
        int calls = 0;
        var hook = conv.register_forward_hook((_, _, output) =>
        {
            calls++;
            return output;
        });

        // When it is applied in inference
        Assert.That(Convolutions.HasHooks(conv), Is.True);
        var y = Convolutions.Apply(conv, x, inference: true);

        // Then the layer ran with its hook, and without the hook Winograd runs again
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(Same(y, conv.call(x)), Is.True);
        hook.remove();
        Assert.That(Convolutions.HasHooks(conv), Is.False);
    }

    [Test]
    public void Vae_Should_RunItsConvolutionsByWinograd_When_InInference()
    {
        // Given the tiny VAE in eval mode (channels-last in inference), an image and latents
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        vae.eval();
        manual_seed(41);
        var image = rand(1, 3, 64, 64) * 2 - 1;
        var latents = randn(1, 4, 8, 8);

        // When it encodes and decodes as it is, and with a no-op hook on every convolution (libtorch's path)
        var moments = vae.Encode(image).Parameters;
        var decoded = vae.Decode(latents);
        var removers = vae.modules().OfType<Conv2d>().Select(c => c.register_forward_hook((_, _, output) => output)).ToList();
        var libtorchMoments = vae.Encode(image).Parameters;
        var libtorchDecoded = vae.Decode(latents);
        removers.ForEach(r => r.remove());

        // Then the two differ (the resnets' and upsamplers' convolutions ran by Winograd) by float32 rounding only
        double encodeDifference = (moments - libtorchMoments).abs().max().item<float>();
        double decodeDifference = (decoded - libtorchDecoded).abs().max().item<float>();
        TestContext.Out.WriteLine($"Winograd against libtorch: moments {encodeDifference:E2}, image {decodeDifference:E2}");
        Assert.That(encodeDifference, Is.GreaterThan(0).And.LessThan(Tolerance));
        Assert.That(decodeDifference, Is.GreaterThan(0).And.LessThan(Tolerance));
    }
}
