using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

/// <summary>
/// A model's forward leaves in the caller's dispose scope only what it returns, as PyTorch frees intermediates when
/// their last reference goes: otherwise a whole forward's intermediates stay allocated until the caller's scope ends
/// (SD 1.5's UNet at 512 px, batch 2: 7.9 GiB peak instead of 4.3; docs/performance.md).
/// </summary>
public sealed class IntermediatesTests
{
    [Test]
    public void UNetForward_Should_LeaveOnlyItsOutputInTheCallersScope_When_RunWithAndWithoutGradients()
    {
        using var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(TinySdFolder.Source));
        foreach (bool grad in new[] { false, true })
        {
            using var inputs = torch.NewDisposeScope();
            var sample = torch.randn(2, unet.Config.InChannels, 16, 16);
            var timestep = torch.full([2], 10L);
            var text = torch.randn(2, 77, unet.Config.CrossAttentionDim);
            using var _ = torch.set_grad_enabled(grad);
            using var scope = torch.NewDisposeScope();
            var output = unet.call(sample, timestep, text);
            // 19 with the time embedding and the output (462 when every intermediate stayed, measured)
            Assert.That(scope.DisposablesCount, Is.LessThanOrEqualTo(24), $"tensors left in the caller's scope (grad {grad})");
            if (!grad) continue;
            output.sum().backward(); // autograd kept what backward needs, whatever the forward disposed
            Assert.That(unet.parameters().All(p => p.grad is not null), "every parameter has a gradient");
            unet.zero_grad();
        }
    }

    [Test]
    public void VaeEncodeAndDecode_Should_LeaveOnlyTheirOutputsInTheCallersScope()
    {
        using var vae = AutoencoderKL.FromFolder(DiffusersFolder.Open(TinySdFolder.Source));
        using var inputs = torch.NewDisposeScope();
        var image = torch.rand(1, 3, 32, 32) * 2 - 1;
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var posterior = vae.Encode(image);
        var decoded = vae.Decode(posterior.Mode());
        // 10: the moments, the distribution's parts and the image (134 when every intermediate stayed, measured)
        Assert.That(scope.DisposablesCount, Is.LessThanOrEqualTo(12), "tensors left in the caller's scope");
    }
}
