using SdPipeline.Models.Shared;
using TorchSharp;

namespace SdPipeline.Tests.Models.Shared;

public sealed class NormsTests
{
    [Test]
    public void GroupNorm_Should_StartWithUnitWeightAndZeroBias_AsInPyTorch()
    {
        // TorchSharp 0.107's own GroupNorm leaves these uninitialised; fresh models must not start from garbage.
        using var norm = Norms.GroupNorm(4, 64, 1e-6);

        Assert.That(norm.weight!.data<float>().ToArray(), Is.All.EqualTo(1f));
        Assert.That(norm.bias!.data<float>().ToArray(), Is.All.EqualTo(0f));
        Assert.That(norm.eps, Is.EqualTo(1e-6));
    }
}
