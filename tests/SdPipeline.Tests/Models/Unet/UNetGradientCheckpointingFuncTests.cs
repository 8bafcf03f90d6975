using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary><see cref="UNetBlock.GradientCheckpointingFunc"/> is where training wraps blocks (gradient checkpointing): it must see all of them.</summary>
public sealed class UNetGradientCheckpointingFuncTests
{
    [Test]
    public void GradientCheckpointingFunc_Should_InvokeEveryResnetAndTransformerOnce_And_LeaveTheOutputUnchanged()
    {
        // Given the tiny UNet (resnets: 2 + 2 down, 2 mid, 3 + 3 up; transformers: 2 down, 1 mid, 3 up)
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        using var fixture = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "unet.safetensors"));
        var direct = unet.call(fixture.Read("sample"), fixture.Read("timesteps"), fixture.Read("encoder_hidden_states"));

        // When a checkpointing function that counts the blocks is installed
        var seen = new List<nn.Module>();
        unet.EnableGradientCheckpointing((block, hiddenStates, condition) =>
        {
            seen.Add(block);
            return block.call(hiddenStates, condition);
        });
        var wrapped = unet.call(fixture.Read("sample"), fixture.Read("timesteps"), fixture.Read("encoder_hidden_states"));

        // Then it saw each of the 18 blocks once, and the result is the same
        var blocks = unet.named_modules().Select(m => m.module).Where(m => m is ResnetBlock2D or Transformer2DModel).ToList();
        Assert.That(seen, Is.EquivalentTo(blocks));
        Assert.That(seen.Count(b => b is ResnetBlock2D), Is.EqualTo(12));
        Assert.That(seen.Count(b => b is Transformer2DModel), Is.EqualTo(6));
        Assert.That(torch.equal(wrapped, direct).all().item<bool>(), Is.True);
    }
}
