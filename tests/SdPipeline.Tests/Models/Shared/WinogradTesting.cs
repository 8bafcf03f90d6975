using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>What the two Winograd convolutions' tests build and compare: eval-mode layers, float64 references, bits.</summary>
internal static class WinogradTesting
{
    public static Conv2d Convolution(long cin, long cout, bool bias = true, long stride = 1, long padding = 1, long kernel = 3)
    {
        var conv = nn.Conv2d(cin, cout, kernel, stride: stride, padding: padding, bias: bias);
        conv.eval();
        return conv;
    }

    /// <summary>The 3×3, padding-1 convolution of <paramref name="x"/> by <paramref name="conv"/>'s parameters in float64.</summary>
    public static Tensor Float64(Tensor x, Conv2d conv) =>
        nn.functional.conv2d(x.to(ScalarType.Float64), conv.weight!.to(ScalarType.Float64), conv.bias?.to(ScalarType.Float64), padding: [1, 1]);

    public static bool Same(Tensor a, Tensor b) => a.eq(b).all().item<bool>();

    /// <summary>
    /// Asserts that <paramref name="y"/> is <paramref name="conv"/> of <paramref name="x"/> as a plain-layout
    /// [B, C_out, H, W] within <paramref name="tolerance"/> of the float64 convolution, as the UNet's next layers read it.
    /// </summary>
    public static void AssertPlainAndNearFloat64(Tensor y, Tensor x, Conv2d conv, double tolerance)
    {
        Assert.That(y.shape, Is.EqualTo(new[] { x.shape[0], conv.weight!.shape[0], x.shape[2], x.shape[3] }));
        Assert.That(y.is_contiguous(), Is.True, "the plain layout");
        double error = Error(y, Float64(x, conv));
        TestContext.Out.WriteLine($"largest error against float64: {error:E2}");
        Assert.That(error, Is.LessThan(tolerance));
    }

    /// <summary>The largest absolute difference of <paramref name="actual"/> from the float64 <paramref name="expected"/>.</summary>
    public static double Error(Tensor actual, Tensor expected) => (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();
}
