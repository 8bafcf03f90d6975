using SdPipeline.Models.Shared;
using SdPipeline.Training.Precision;
using TorchSharp;
using static SdPipeline.Tests.Support.Float64Checks;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The training convolution (<see cref="TrainingConvolutionFunction"/>): its output and the gradients of the input,
/// weight and bias against float64 convolution through libtorch's autograd — by the tiled path (all three passes by
/// Winograd, the weight in several blocks of channels) and, with it off, by the path for inputs whose tiles do not fit:
/// Winograd's F(2×2, 3×3) with odd sizes (a last row and column of tiles half outside the image), several images, the
/// weight's gradient by im2col in several blocks of input channels and by Winograd's F(3×3, 2×2) in one chunk of tiles or
/// several; by libtorch's convolution below 16×16, with the weight's gradient written by the first image's product and
/// added to by the next — and when a training layer takes it.
/// </summary>
[NonParallelizable] // switches the tiled path for the whole process
public sealed class TrainingConvolutionFunctionTests
{
    [SetUp]
    public void RequireAvx512() =>
        Assume.That(WinogradConvolution.IsSupported, "the transforms need AVX-512; libtorch's convolution runs everywhere else");

    // Largest error relative to the largest magnitude of each reference tensor. Measured on an AMD EPYC Zen 4 (family 25,
    // model 17), over the cases below: 1.1e-7–7.2e-7.
    private const double Tolerance = 1e-5;

    [TestCase(2, 32, 48, 17, 19, true, true, TestName = "Gradients_Should_MatchFloat64_When_TheImageIsOddSized")]
    [TestCase(2, 48, 32, 16, 16, true, true, TestName = "Gradients_Should_MatchFloat64_When_EveryProductIsByTiles_AtSixteenBySixteen")]
    [TestCase(2, 32, 48, 32, 32, true, true, TestName = "Gradients_Should_MatchFloat64_When_EveryProductIsByFourByFourTiles_AtThirtyTwoByThirtyTwo")]
    [TestCase(1, 32, 16, 34, 33, true, true, TestName = "Gradients_Should_MatchFloat64_When_TheSidesAreNotMultiplesOfFour_AtThirtyTwoByThirtyTwo")]
    [TestCase(2, 32, 48, 17, 19, true, false, TestName = "Gradients_Should_MatchFloat64_When_TheImageIsOddSized_AndTheTilesDoNotFit")]
    [TestCase(1, 480, 16, 32, 32, false, false, TestName = "Gradients_Should_MatchFloat64_When_TheIm2colWeightGradientTakesSeveralChannelBlocks")]
    [TestCase(1, 32, 16, 64, 64, true, false, TestName = "Gradients_Should_MatchFloat64_When_TheWeightGradientIsByWinogradInChunks")]
    [TestCase(2, 32, 48, 7, 9, true, true, TestName = "Gradients_Should_MatchFloat64_When_BelowWinogradsResolutionWithTwoImages")]
    [TestCase(1, 64, 32, 4, 4, false, true, TestName = "Gradients_Should_MatchFloat64_When_AtTheUnetsLowestLevel")]
    public void Gradients_Should_MatchFloat64Convolution(int batch, int cin, int cout, int height, int width, bool withBias, bool tiles)
    {
        // Without the tiled path the layer takes the one for inputs whose tiles do not fit (larger than these).
        TrainingConvolutionFunction.TilesEnabled = tiles;
        try { Gradients(batch, cin, cout, height, width, withBias); }
        finally { TrainingConvolutionFunction.TilesEnabled = true; }
    }

    private static void Gradients(int batch, int cin, int cout, int height, int width, bool withBias)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(31);
        var input = torch.randn(batch, cin, height, width).requires_grad_();
        var weight = (torch.randn(cout, cin, 3, 3) * (1.0 / Math.Sqrt(9 * cin))).requires_grad_();
        var bias = withBias ? torch.randn(cout).requires_grad_() : null;
        var upstream = torch.randn(batch, cout, height, width);

        var (input64, weight64, bias64) = (Float64Leaf(input), Float64Leaf(weight), bias is null ? null : Float64Leaf(bias));
        var expected = nn.functional.conv2d(input64, weight64, bias64, padding: [1, 1]);
        expected.backward([upstream.to(ScalarType.Float64)]);
        var actual = TrainingConvolutionFunction.Convolve(input, weight, bias);
        actual.backward([upstream]);

        var checks = new List<(string, Tensor, Tensor)> { ("output", actual, expected.detach()), ("input", input.grad!, input64.grad!), ("weight", weight.grad!, weight64.grad!) };
        if (bias is not null) checks.Add(("bias", bias.grad!, bias64!.grad!));
        foreach (var (name, ours, reference) in checks)
        {
            double error = RelativeError(ours, reference);
            TestContext.Out.WriteLine($"{name}: {error:E2} of the largest magnitude");
            Assert.That(error, Is.LessThan(Tolerance), name);
        }
    }

    [TestCase(2, 32, 48, 17, 19, 1L << 16, TestName = "WeightGradient_Should_MatchFloat64_When_TheImageIsOddSizedAndTheTilesTakeSeveralChunks")]
    [TestCase(1, 128, 16, 64, 64, 24L << 20, TestName = "WeightGradient_Should_MatchFloat64_At_OneChunk")]
    public void WeightGradient_Should_MatchFloat64(int batch, int cin, int cout, int height, int width, long chunkBytes)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(33);
        var input = torch.randn(batch, cin, height, width);
        var upstream = torch.randn(batch, cout, height, width);
        var weight64 = torch.zeros(cout, cin, 3, 3, ScalarType.Float64).requires_grad_();
        nn.functional.conv2d(input.to(ScalarType.Float64), weight64, padding: [1, 1]).backward([upstream.to(ScalarType.Float64)]);

        var actual = WinogradConvolution.WeightGradient(input, upstream, chunkBytes);

        Assert.That(actual.shape, Is.EqualTo(new long[] { cout, cin, 3, 3 }));
        double error = RelativeError(actual, weight64.grad!);
        TestContext.Out.WriteLine($"weight: {error:E2} of the largest magnitude");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    // Blocks of 16 channels: each thread takes one or two of its share in turn.
    [TestCase(1, 32, 48, 16, 16, TestName = "TrainingProducts_Should_MatchFloat64_When_TheWeightTakesSeveralBlocks")]
    [TestCase(2, 48, 32, 17, 19, TestName = "TrainingProducts_Should_MatchFloat64_When_TheImagesAreOddSized")]
    [TestCase(1, 32, 48, 32, 32, TestName = "TrainingProducts_Should_MatchFloat64_When_TheTilesAreFourByFour")]
    [TestCase(2, 48, 32, 36, 44, TestName = "TrainingProducts_Should_MatchFloat64_When_TheTilesAreFourByFour_InTwoImages")]
    [TestCase(1, 320, 320, 32, 32, TestName = "TrainingProducts_Should_MatchFloat64_When_FourByFour_AtTheUnetsWidth")]
    public void TrainingProducts_Should_MatchFloat64(int batch, int cin, int cout, int height, int width)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(35);
        var input = torch.randn(batch, cin, height, width);
        var weight = torch.randn(cout, cin, 3, 3) * (1.0 / Math.Sqrt(9 * cin));
        var bias = torch.randn(cout);
        var upstream = torch.randn(batch, cout, height, width);
        var (input64, weight64, bias64) = (Float64Leaf(input), Float64Leaf(weight), Float64Leaf(bias));
        var expected = nn.functional.conv2d(input64, weight64, bias64, padding: [1, 1]);
        expected.backward([upstream.to(ScalarType.Float64)]);
        const long channelBlock = 16;

        var checks = new (string, Tensor, Tensor)[]
        {
            ("output", WinogradConvolution.ConvolveForTraining(input, weight, bias, channelBlock), expected.detach()),
            ("input", WinogradConvolution.InputGradientForTraining(upstream, weight, channelBlock), input64.grad!),
            ("weight", WinogradConvolution.WeightGradientForTraining(input, upstream, channelBlock), weight64.grad!),
        };
        foreach (var (name, ours, reference) in checks)
        {
            Assert.That(ours.shape, Is.EqualTo(reference.shape), name);
            double error = RelativeError(ours, reference);
            TestContext.Out.WriteLine($"{name}: {error:E2} of the largest magnitude");
            Assert.That(error, Is.LessThan(Tolerance), name);
        }
    }

    // F(4×4, 3×3) where both sides are multiples of 4 from 32×32 on; F(2×2, 3×3) elsewhere.
    [TestCase(32, 32, 4)]
    [TestCase(64, 36, 4)]
    [TestCase(16, 16, 2)]
    [TestCase(34, 33, 2)]
    [TestCase(36, 20, 2)]
    public void TileSide_Should_BeFour_FromThirtyTwoByThirtyTwo_When_BothSidesAreMultiplesOfFour(int height, int width, int expected)
    {
        using var input = torch.empty(1, 16, height, width);
        Assert.That(WinogradConvolution.TileSide(input), Is.EqualTo(expected));
    }

    [Test]
    public void TrainingLayer_Should_ConvolveByWinograd_UnderAmdsRulesWithOneDnnOff()
        => UnderAmdsRulesWithOneDnnOff(TrainingLayer);

    [Test]
    public void TrainingLayer_Should_LeaveConvolutionsToLibtorch_UnderIntelsRules() => UnderAmdsRulesWithOneDnnOff(() =>
    {
        using var scope = torch.NewDisposeScope();
        var (layer, input) = LayerTakingTheFunction(35, 32);
        using var _ = layer;
        InferenceKernels.Use("intel");
        Assert.That(TrainingConvolutionFunction.AppliesToTraining(input, layer.weight, layer.bias, layer.Stride, layer.Padding), Is.False,
            "runtime.kernels=intel: the Xeon's rules, which leave training's convolutions to libtorch");
    });

    // A training layer under AMD's rules (on any CPU with AVX-512) with oneDNN off, as the numerics self-check leaves it
    // on AMD's CPUs for SD 1.5.
    private static void UnderAmdsRulesWithOneDnnOff(Action test)
    {
        bool oneDnn = OneDnn.Enabled;
        Assume.That(OneDnn.TrySetEnabled(false), "oneDNN's switch is not reachable in this libtorch");
        InferenceKernels.Use("amd");
        try { test(); }
        finally
        {
            InferenceKernels.Use("auto");
            OneDnn.TrySetEnabled(oneDnn);
        }
    }

    private static (AutocastConv2d Layer, Tensor Input) LayerTakingTheFunction(int seed, int size)
    {
        torch.manual_seed(seed);
        var layer = new AutocastConv2d(nn.Conv2d(32, 32, 3, padding: 1));
        var input = torch.randn(1, 32, size, size).requires_grad_();
        Assume.That(TrainingConvolutionFunction.AppliesToTraining(input, layer.weight, layer.bias, layer.Stride, layer.Padding),
            "under AMD's rules the training kernel takes a 32-channel layer wherever it runs");
        return (layer, input);
    }

    private static void TrainingLayer()
    {
        using var scope = torch.NewDisposeScope();
        var (layer, input) = LayerTakingTheFunction(32, 32);
        using var _ = layer;

        var output = layer.call(input);
        output.square().sum().backward();
        var inputGrad = input.grad!.clone();
        var weightGrad = layer.weight.grad!.clone();
        input.grad!.zero_();
        layer.zero_grad();
        InferenceKernels.Use("off");
        Tensor reference;
        try
        {
            reference = layer.call(input);
            reference.square().sum().backward();
        }
        finally { InferenceKernels.Use("amd"); }

        Assert.That(output.eq(reference).all().item<bool>(), Is.False, "the two paths differ in rounding, so the kernel did run");
        Assert.That(RelativeError(output, reference.to(ScalarType.Float64)), Is.LessThan(Tolerance));
        Assert.That(RelativeError(inputGrad, input.grad!.to(ScalarType.Float64)), Is.LessThan(Tolerance));
        Assert.That(RelativeError(weightGrad, layer.weight.grad!.to(ScalarType.Float64)), Is.LessThan(Tolerance));
    }

    [Test]
    public void TrainingLayer_Should_TakeTheFunction_BelowWinogradsResolution() => UnderAmdsRulesWithOneDnnOff(() =>
    {
        using var scope = torch.NewDisposeScope();
        var (layer, input) = LayerTakingTheFunction(34, 8);
        using var _ = layer;
        long before = SavedTensors.Released;

        layer.call(input).square().sum().backward();

        // Only the function's backward releases saved tensors this way; libtorch's own convolution does not count here.
        Assert.That(SavedTensors.Released - before, Is.EqualTo(1));
        Assert.That(layer.weight.grad, Is.Not.Null);
    });

    [Test]
    public void WeightGradient_Should_AddUpOverBackwardPasses_AsLibtorchAccumulates()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(35);
        var weight = (torch.randn(16, 16, 3, 3) * 0.1).requires_grad_();
        var first = torch.randn(1, 16, 8, 8);
        var second = torch.randn(1, 16, 40, 40);

        TrainingConvolutionFunction.Convolve(first, weight, null).square().sum().backward();
        TrainingConvolutionFunction.Convolve(second, weight, null).square().sum().backward();

        var weight64 = Float64Leaf(weight);
        nn.functional.conv2d(first.to(ScalarType.Float64), weight64, padding: [1, 1]).square().sum().backward();
        nn.functional.conv2d(second.to(ScalarType.Float64), weight64, padding: [1, 1]).square().sum().backward();
        Assert.That(RelativeError(weight.grad!, weight64.grad!), Is.LessThan(Tolerance));
    }

    [Test]
    public void WeightGradient_Should_ReachAParameter_ThroughAComputedWeight()
    {
        // A weight made from a parameter (as LoRA and the fused backward pass make it) is no leaf: its gradient goes back
        // through libtorch to the operation that made it.
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(36);
        var parameter = (torch.randn(16, 16, 3, 3) * 0.1).requires_grad_();
        var input = torch.randn(1, 16, 8, 8);

        TrainingConvolutionFunction.Convolve(input, parameter * 2.0, null).sum().backward();

        var parameter64 = Float64Leaf(parameter);
        nn.functional.conv2d(input.to(ScalarType.Float64), parameter64 * 2.0, padding: [1, 1]).sum().backward();
        Assert.That(RelativeError(parameter.grad!, parameter64.grad!), Is.LessThan(Tolerance));
    }

    [Test]
    public void Backward_Should_FreeTheSavedTensors_When_ItHasRun()
    {
        using var scope = torch.NewDisposeScope();
        var input = torch.randn(1, 16, 8, 8).requires_grad_();
        var weight = torch.randn(16, 16, 3, 3).requires_grad_();
        var output = TrainingConvolutionFunction.Convolve(input, weight, null);
        long before = SavedTensors.Released;

        output.sum().backward();

        Assert.That(SavedTensors.Released - before, Is.EqualTo(1));
        Assert.That(weight.grad, Is.Not.Null);
    }


}
