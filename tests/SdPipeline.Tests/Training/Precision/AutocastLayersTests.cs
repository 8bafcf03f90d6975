using SdPipeline.Models.Shared;
using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

/// <summary>
/// The precision-aware layers training puts into a model: outside a region they must be TorchSharp's layers bit for
/// bit (so that every parity result stays as it was); inside one they follow the autocast policy.
/// </summary>
public sealed class AutocastLayersTests
{
    [TestCase(true)]
    [TestCase(false)]
    public void AutocastLinear_Should_BeNnLinearBitForBit_When_SeededAlikeAndOutsideARegion(bool hasBias)
    {
        // Given TorchSharp's Linear and ours, built after the same seed
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(1234);
        using var stock = nn.Linear(24, 40, hasBias);
        torch.manual_seed(1234);
        using var ours = new AutocastLinear(nn.Linear(24, 40, hasBias));
        var input = torch.randn(5, 7, 24, generator: new Generator(3));

        // Then they hold the same parameters under the same keys and compute the same output
        AssertSameState(stock, ours);
        AssertIdentical(ours.call(input), stock.call(input));
    }

    [TestCase(3, 1, 1)]
    [TestCase(3, 2, 1)]
    [TestCase(3, 2, 0)]
    [TestCase(1, 1, 0)]
    public void AutocastConv2d_Should_BeNnConv2dBitForBit_When_SeededAlikeAndOutsideARegion(int kernel, int stride, int padding)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(99);
        using var stock = nn.Conv2d(6, 10, kernel, stride: stride, padding: padding);
        torch.manual_seed(99);
        using var ours = new AutocastConv2d(nn.Conv2d(6, 10, kernel, stride: stride, padding: padding));
        var input = torch.randn(2, 6, 9, 9, generator: new Generator(4));

        AssertSameState(stock, ours);
        AssertIdentical(ours.call(input), stock.call(input));
    }

    [Test]
    public void AutocastNorms_Should_BeTorchSharpsNormsBitForBit_When_OutsideARegion()
    {
        // Given stock norms with the same (non-trivial) affine parameters as ours
        using var scope = torch.NewDisposeScope();
        using var stockGroup = nn.GroupNorm(4, 16, 1e-6);
        using var ourGroup = new AutocastGroupNorm(Norms.GroupNorm(4, 16, 1e-6));
        using var stockLayer = nn.LayerNorm(16, 1e-5);
        using var ourLayer = new AutocastLayerNorm(nn.LayerNorm(16, 1e-5));
        using (torch.no_grad())
        {
            ulong seed = 5;
            foreach (var (stock, ours) in new (Tensor, Tensor)[] { (stockGroup.weight, ourGroup.weight), (stockGroup.bias!, ourGroup.bias!), (stockLayer.weight, ourLayer.weight), (stockLayer.bias!, ourLayer.bias!) })
            {
                var values = torch.randn(16, generator: new Generator(seed++));
                stock.copy_(values);
                ours.copy_(values);
            }
        }
        var image = torch.randn(2, 16, 5, 5, generator: new Generator(6));
        var tokens = torch.randn(2, 9, 16, generator: new Generator(7));

        AssertSameState(stockLayer, ourLayer);
        AssertIdentical(ourGroup.call(image), stockGroup.call(image));
        AssertIdentical(ourLayer.call(tokens), stockLayer.call(tokens));
    }

    [TestCase(ScalarType.Float16)]
    [TestCase(ScalarType.BFloat16)]
    public void Layers_Should_MultiplyInHalfAndNormaliseInFloat32_When_InsideARegion(ScalarType dtype)
    {
        // Given a conv → GroupNorm → linear → LayerNorm stack with float32 parameters
        using var scope = torch.NewDisposeScope();
        using var conv = new AutocastConv2d(nn.Conv2d(4, 8, 3, padding: 1));
        using var groupNorm = new AutocastGroupNorm(Norms.GroupNorm(2, 8, 1e-5));
        using var linear = new AutocastLinear(nn.Linear(8, 8));
        using var layerNorm = new AutocastLayerNorm(nn.LayerNorm(8));
        var input = torch.randn(2, 4, 6, 6, generator: new Generator(8));

        // When it runs forward in a region and backward after it
        Tensor convolved, grouped, projected, normalised;
        using (Autocast.Enter(dtype))
        {
            convolved = conv.call(input);
            grouped = groupNorm.call(convolved);
            projected = linear.call(grouped.permute(0, 2, 3, 1));
            normalised = layerNorm.call(projected);
        }
        normalised.sum().backward();

        // Then the matrix work ran in the region's dtype, the norms in float32 (whatever their input)
        Assert.That(convolved.dtype, Is.EqualTo(dtype));
        Assert.That(grouped.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(projected.dtype, Is.EqualTo(dtype));
        Assert.That(normalised.dtype, Is.EqualTo(ScalarType.Float32));
        // And the parameters and their gradients stayed float32: the casts' backward brought the gradients home
        foreach (var parameter in new nn.Module[] { conv, groupNorm, linear, layerNorm }.SelectMany(m => m.parameters()))
        {
            Assert.That(parameter.dtype, Is.EqualTo(ScalarType.Float32));
            Assert.That(parameter.grad, Is.Not.Null);
            Assert.That(parameter.grad!.dtype, Is.EqualTo(ScalarType.Float32));
        }
    }

    [TestCase(ScalarType.Float16)]
    [TestCase(ScalarType.BFloat16)]
    public void AutocastOps_Should_FollowTorchAutocastsLists_When_InsideARegion(ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(2, 3, 4, 8, generator: new Generator(9));
        var b = torch.randn(2, 3, 8, 4, generator: new Generator(10));
        using var region = Autocast.Enter(dtype);

        // Matrix products and attention in half precision
        Assert.That(AutocastOps.MatMul(a, b).dtype, Is.EqualTo(dtype));
        Assert.That(AutocastOps.ScaledDotProductAttention(a, a, a).dtype, Is.EqualTo(dtype));
        // Softmax and the loss in float32, even from half inputs
        Assert.That(AutocastOps.Softmax(a.to(dtype), -1).dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(AutocastOps.MseLoss(a.to(dtype), a.to(dtype)).dtype, Is.EqualTo(ScalarType.Float32));
        // An explicit float64 computation is left alone, as torch.autocast leaves it
        Assert.That(AutocastOps.MatMul(a.to(ScalarType.Float64), b.to(ScalarType.Float64)).dtype, Is.EqualTo(ScalarType.Float64));
    }

    [Test]
    public void AutocastOps_Should_MatchFloat32WithinHalfPrecisionRounding_When_InsideAFloat16Region()
    {
        using var scope = torch.NewDisposeScope();
        var input = torch.randn(64, 32, generator: new Generator(11));
        var weight = torch.randn(16, 32, generator: new Generator(12)) / Math.Sqrt(32);
        var expected = AutocastOps.Linear(input, weight, null);

        Tensor actual;
        using (Autocast.Enter(ScalarType.Float16)) actual = AutocastOps.Linear(input, weight, null);

        // float16 keeps 11 significant bits: products of rounded inputs are off by ~1e-3 relative
        double relative = (actual.to(ScalarType.Float32) - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        Assert.That(relative, Is.GreaterThan(0).And.LessThan(5e-3));
    }

    private static void AssertSameState(nn.Module expected, nn.Module actual)
    {
        var expectedState = expected.state_dict();
        var actualState = actual.state_dict();
        Assert.That(actualState.Keys, Is.EqualTo(expectedState.Keys));
        foreach (var (key, value) in expectedState) AssertIdentical(actualState[key], value, key);
    }

    private static void AssertIdentical(Tensor actual, Tensor expected, string what = "output")
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape), what);
        Assert.That(actual.dtype, Is.EqualTo(expected.dtype), what);
        Assert.That(actual.data<float>().ToArray(), Is.EqualTo(expected.data<float>().ToArray()), what);
    }
}
