using SdPipeline.Models.Shared;
using SdPipeline.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// In inference, the UNet's wide convolutions at low resolutions (up to 16×16, on AMD's CPUs 4×4) run on libtorch's own
/// path, which is faster there than oneDNN's (docs/performance.md); everything else keeps the path it had, and the
/// process's oneDNN switch is as it was.
/// </summary>
[NonParallelizable] // switches oneDNN for the whole process
public sealed class LibtorchConvolutionRuleTests
{
    private bool _oneDnnBefore;

    [SetUp]
    public void Remember()
    {
        Assume.That(OneDnn.Available, "this libtorch has no oneDNN switch");
        _oneDnnBefore = OneDnn.Enabled;
        OneDnn.TrySetEnabled(true);
    }

    [TearDown]
    public void Restore() => OneDnn.TrySetEnabled(_oneDnnBefore);

    private static Conv2d Convolution(long cin, long cout, long stride = 1)
    {
        manual_seed(1);
        var conv = nn.Conv2d(cin, cout, 3, stride: stride, padding: 1);
        conv.eval();
        return conv;
    }

    private static bool Same(Tensor a, Tensor b) => a.eq(b).all().item<bool>();

    // The layer's output with oneDNN on and off; the test is only meaningful where the two paths round differently.
    private static (Tensor OneDnn, Tensor Libtorch) BothPaths(Conv2d conv, Tensor x)
    {
        var withOneDnn = conv.call(x);
        OneDnn.TrySetEnabled(false);
        var withLibtorch = conv.call(x);
        OneDnn.TrySetEnabled(true);
        Assume.That(Same(withOneDnn, withLibtorch), Is.False, "both paths gave the same bits here: the path taken cannot be told");
        return (withOneDnn, withLibtorch);
    }

    [TestCase(1280, 1280, 8)]
    [TestCase(2560, 1280, 16)]
    [TestCase(2560, 1280, 4)] // (libtorch picks its own path itself for an input of at most 20480 values, as 1280 × 4 × 4)
    public void Apply_Should_TakeThisCpusPath_When_InferringAWideLayerAtALowResolution(int cin, int cout, int size)
    {
        using var _ = no_grad();
        using var conv = Convolution(cin, cout);
        var x = randn(1, cin, size, size);
        var (oneDnn, libtorch) = BothPaths(conv, x);
        bool libtorchsOwn = size * size <= Convolutions.LowResolutionLimit(Convolutions.OnAmd);
        // (On AMD's CPUs with AVX-512, 16×16 goes to the channels-last Winograd kernel instead.)
        bool winograd = Convolutions.PrefersChannelsLastWinograd(x, conv);
        var expected = winograd ? WinogradConvolution.ConvolvePlain(x, conv) : libtorchsOwn ? libtorch : oneDnn;

        Assert.That(Same(Convolutions.Apply(conv, x, inference: true), expected), Is.True,
            $"{size}×{size} on {CpuModel.Name}: {(winograd ? "Winograd" : libtorchsOwn ? "libtorch's own path" : "oneDNN")} expected");
        Assert.That(OneDnn.Enabled, Is.True, "the switch is restored");
    }

    [Test]
    public void LowResolutionLimit_Should_Be16x16_OnIntel_And4x4_OnAmd()
    {
        // oneDNN beats MKL's generic AMD path at 8×8 and 16×16 on a Zen 4; libtorch's own path still wins at 4×4 there
        Assert.That(Convolutions.LowResolutionLimit(amd: false), Is.EqualTo(16 * 16));
        Assert.That(Convolutions.LowResolutionLimit(amd: true), Is.EqualTo(4 * 4));
    }

    [Test]
    public void OnAmd_Should_AgreeWithTheCpuModelName()
    {
        Assume.That(System.Runtime.Intrinsics.X86.X86Base.IsSupported, "not an x86 CPU");
        Assert.That(Convolutions.OnAmd, Is.EqualTo(CpuModel.Identity.ModelName.StartsWith("AMD", StringComparison.Ordinal)), CpuModel.Name);
    }

    [TestCase(1280, 640, 8, 1, false)]   // narrower output: oneDNN is as fast
    [TestCase(1280, 1280, 8, 2, false)]  // a downsampler
    [TestCase(1280, 1280, 8, 1, true)]   // training
    public void Apply_Should_KeepOneDnn_Elsewhere(int cin, int cout, int size, int stride, bool training)
    {
        using var _ = no_grad();
        using var conv = Convolution(cin, cout, stride);
        var x = randn(1, cin, size, size);
        var (oneDnn, _) = BothPaths(conv, x);

        Assert.That(Same(Convolutions.Apply(conv, x, inference: !training), oneDnn), Is.True);
    }

    [Test]
    public void PrefersLibtorchsOwn_Should_BeFalse_When_TheImageIsThirtyTwoByThirtyTwo()
    {
        // 32×32: the columns would be 4× larger than at 16×16 (and on AVX-512 the layer runs by Winograd there).
        using var _ = no_grad();
        using var conv = Convolution(1280, 1280);
        using var x = randn(1, 1280, 32, 32);

        Assert.That(Convolutions.PrefersLibtorchsOwn(x, conv), Is.False);
    }

    [Test]
    public void Apply_Should_KeepOneDnnOff_When_TheProcessTurnedItOff()
    {
        using var _ = no_grad();
        using var conv = Convolution(1280, 1280);
        var x = randn(1, 1280, 8, 8);
        OneDnn.TrySetEnabled(false);

        Convolutions.Apply(conv, x, inference: true).Dispose();

        Assert.That(OneDnn.Enabled, Is.False);
    }

    [Test]
    public void Without_Should_RestoreTheSwitch_When_TheOperationThrows()
    {
        Assert.Throws<InvalidOperationException>(() => OneDnn.Without<int>(() =>
        {
            Assert.That(OneDnn.Enabled, Is.False);
            throw new InvalidOperationException("failed");
        }));
        Assert.That(OneDnn.Enabled, Is.True);
    }
}
