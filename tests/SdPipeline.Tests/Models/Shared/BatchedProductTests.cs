using SdPipeline.Models.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>The plain-layout Winograd kernel's batched products by oneDNN's brgemm against float64 and libtorch's <c>bmm</c>: every tail of rows, columns and depth.</summary>
public sealed class BatchedProductTests
{
    [SetUp]
    public void RequireKernel() => Assume.That(Brgemm.IsAvailable, "libtorch exports no brgemm here; bmm runs instead");

    [TestCase(16, 320, 320, 400, TestName = "Multiply_Should_MatchFloat64_At_The64x64LevelsChunk")]
    [TestCase(3, 70, 1030, 200, TestName = "Multiply_Should_MatchFloat64_When_RowsColumnsAndDepthEndMidBlock")]
    [TestCase(1, 1, 1, 1, TestName = "Multiply_Should_MatchFloat64_When_EveryMatrixIsOneElement")]
    public void Multiply_Should_MatchFloat64Bmm(int batch, int rows, int depth, int columns)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(31);
        var a = torch.randn(batch, rows, depth);
        var b = torch.randn(batch, depth, columns);

        var actual = BatchedProduct.Multiply(a, b);
        var expected = torch.bmm(a.to(ScalarType.Float64), b.to(ScalarType.Float64));
        var libtorch = torch.bmm(a, b);

        Assert.That(actual.shape, Is.EqualTo(new long[] { batch, rows, columns }));
        double error = (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();
        double libtorchError = (libtorch.to(ScalarType.Float64) - expected).abs().max().item<double>();
        TestContext.Out.WriteLine($"largest error against float64: brgemm {error:E2}, bmm {libtorchError:E2}");
        // Sums of ≤ 1030 products of standard normals (magnitude ≤ ~130): float32 rounding bounds both.
        Assert.That(error, Is.LessThan(Math.Max(4 * libtorchError, 1e-5)));
    }
}
