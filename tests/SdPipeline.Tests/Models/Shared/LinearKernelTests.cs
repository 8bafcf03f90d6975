using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// The inference linear kernel against float64 and libtorch's linear: every tail (rows past a block of 64, columns
/// past a panel, depths cut into uneven blocks), with and without bias, and when the models use it.
/// </summary>
public sealed class LinearKernelTests
{
    [SetUp]
    public void RequireKernel() =>
        Assume.That(LinearKernel.IsSupported, "the kernel needs AVX-512 and libtorch's brgemm export; libtorch's linear runs everywhere else");

    [TestCase(300, 48, 32, true, TestName = "Apply_Should_MatchFloat64_When_RowsEndMidBlock")]
    [TestCase(2 * 77, 320, 768, true, TestName = "Apply_Should_MatchFloat64_When_DepthSpansUnevenBlocks (cross-attention keys)")]
    [TestCase(517, 2560, 320, true, TestName = "Apply_Should_MatchFloat64_When_ColumnsSpanSeveralPanels (GEGLU)")]
    [TestCase(129, 1296, 1040, false, TestName = "Apply_Should_MatchFloat64_When_ThereIsNoBias")]
    [TestCase(3, 16, 16, true, TestName = "Apply_Should_MatchFloat64_When_TheLayerIsOneBlock")]
    public void Apply_Should_MatchFloat64Linear(int rows, int outFeatures, int inFeatures, bool bias)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(21);
        using var linear = nn.Linear(inFeatures, outFeatures, hasBias: bias);
        var input = torch.randn(1, rows, inFeatures);
        using var noGrad = torch.no_grad();

        var actual = LinearKernel.Apply(input, linear);
        var expected = nn.functional.linear(input.to(ScalarType.Float64), linear.weight!.to(ScalarType.Float64), linear.bias?.to(ScalarType.Float64));
        var libtorch = linear.call(input);

        Assert.That(actual.shape, Is.EqualTo(new long[] { 1, rows, outFeatures }));
        double error = (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();
        double libtorchError = (libtorch.to(ScalarType.Float64) - expected).abs().max().item<double>();
        TestContext.Out.WriteLine($"largest error against float64: kernel {error:E2}, libtorch {libtorchError:E2}");
        // Sums of ≤ 1040 products of magnitude ≤ ~1: float32 rounding, as libtorch's own GEMM, bounds both.
        Assert.That(error, Is.LessThan(Math.Max(4 * libtorchError, 1e-6)));
    }

    [Test]
    public void Applies_Should_RefuseInputs_It_CannotCompute()
    {
        using var scope = torch.NewDisposeScope();
        using var linear = nn.Linear(32, 48);
        using (torch.no_grad())
        {
            Assert.That(LinearKernel.Applies(torch.randn(4, 32), linear), Is.True);
            Assert.That(LinearKernel.Applies(torch.randn(32, 4).t(), linear), Is.False, "not contiguous");
            Assert.That(LinearKernel.Applies(torch.randn(4, 32, dtype: ScalarType.Float64), linear), Is.False, "float64");
            using var odd = nn.Linear(30, 48);
            Assert.That(LinearKernel.Applies(torch.randn(4, 30), odd), Is.False, "a width that is not a multiple of 16");
        }
        Assert.That(LinearKernel.Applies(torch.randn(4, 32), linear), Is.False, "autograd would need the weight's gradient");
    }

    [Test]
    public void Linears_Should_TakeTheLayer_When_AHookWatchesIt()
    {
        using var scope = torch.NewDisposeScope();
        using var linear = nn.Linear(32, 48);
        using var noGrad = torch.no_grad();
        var input = torch.randn(Linears.KernelRows(amd: true), 32);
        var hook = linear.register_forward_hook((_, _, output) => output + 1);
        try
        {
            Assert.That(Linears.Choose(input, linear), Is.EqualTo(LinearPath.Layer));
            var expected = nn.functional.linear(input, linear.weight!, linear.bias) + 1;
            Assert.That(Linears.Apply(linear, input, inference: true).allclose(expected), Is.True, "the hook's update is kept");
        }
        finally
        {
            hook.remove();
        }
    }

    [Test]
    public void Choose_Should_TakeTheKernel_OnlyOnAmd_And_FromKernelRows()
    {
        using var scope = torch.NewDisposeScope();
        using var linear = nn.Linear(320, 320);
        using var noGrad = torch.no_grad();
        long least = Linears.KernelRows(Convolutions.OnAmd);
        bool kernel = LinearKernel.IsSupported && Convolutions.OnAmd;
        Assert.That(Linears.Choose(torch.randn(2, 4096, 320), linear), Is.EqualTo(kernel ? LinearPath.Kernel : LinearPath.Layer), "8192 rows");
        if (kernel) Assert.That(Linears.Choose(torch.randn(least - 1, 320), linear), Is.EqualTo(LinearPath.Layer), "one row too few");
        // and each vendor's rule, whatever this CPU is
        if (LinearKernel.IsSupported)
        {
            Assert.That(Linears.PrefersKernel(torch.randn(2, 4096, 320), linear, amd: true), Is.True);
            Assert.That(Linears.PrefersKernel(torch.randn(2, 4096, 320), linear, amd: false), Is.False, "Intel's CPUs keep MKL's path");
        }
    }

    [Test]
    public void KernelRows_Should_BeAmdsOnly()
    {
        Assert.That(Linears.KernelRows(amd: true), Is.EqualTo(32));
        Assert.That(Linears.KernelRows(amd: false), Is.EqualTo(long.MaxValue));
    }
}
