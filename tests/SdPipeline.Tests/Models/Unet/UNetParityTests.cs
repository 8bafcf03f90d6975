using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>The tiny UNet against diffusers' outputs on the same weights and inputs (fixtures/parity/unet.*).</summary>
public sealed class UNetParityTests
{
    // fixtures/README.md: UNet outputs within atol 1e-4 of float32 diffusers.
    private const double Tolerance = 1e-4;

    private static UNet2DConditionModel LoadTinyUnet() =>
        UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));

    [Test]
    public void Forward_Should_MatchDiffusers_When_TimestepsAreInt64PerSample()
    {
        // Given the tiny UNet and the recorded inputs
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var unet = LoadTinyUnet();
        unet.eval();
        using var fixture = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "unet.safetensors"));
        var timesteps = fixture.Read("timesteps");
        Assert.That(timesteps.dtype, Is.EqualTo(ScalarType.Int64));

        // When it predicts
        var output = unet.call(fixture.Read("sample"), timesteps, fixture.Read("encoder_hidden_states"));

        // Then the prediction equals diffusers'
        double error = MaxAbsDiff(output, fixture.Read("out"));
        TestContext.Out.WriteLine($"UNet out max |diff| = {error:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    [Test]
    public void Forward_Should_BroadcastTheTimestep_When_ItIsAZeroDimFloat()
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var unet = LoadTinyUnet();
        unet.eval();
        using var fixture = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "unet.safetensors"));
        var timestep = fixture.Read("timestep_scalar");
        Assert.That(timestep.dim(), Is.Zero);

        var output = unet.call(fixture.Read("sample"), timestep, fixture.Read("encoder_hidden_states"));

        double error = MaxAbsDiff(output, fixture.Read("out_timestep_scalar"));
        TestContext.Out.WriteLine($"UNet out (0-d timestep) max |diff| = {error:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
    }

    internal static double MaxAbsDiff(Tensor actual, Tensor expected)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        return (actual - expected).abs().max().item<float>();
    }
}
