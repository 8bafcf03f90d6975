using SdPipeline.Training.Checkpointing;
using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Checkpointing;

public sealed class GradientCheckpointingTests
{
    [Test]
    public void Backward_Should_GiveThePlainGradients_When_BlocksAreCheckpointed()
    {
        // Given the tiny UNet's recorded training step, run once plainly
        using var scope = torch.NewDisposeScope();
        using var step = TinyUnetStep.Load();
        var calls = step.CountBlockCalls();
        var plainLoss = step.Loss(step.Predict());
        plainLoss.backward();
        var plain = step.Gradients();
        int plainCalls = calls();
        step.Unet.zero_grad();

        // When the same step runs with every block checkpointed
        GradientCheckpointing.Apply(step.Unet);
        var loss = step.Loss(step.Predict());
        int forwardCalls = calls() - plainCalls;
        loss.backward();
        int recomputeCalls = calls() - plainCalls - forwardCalls;
        var checkpointed = step.Gradients();

        // Then the loss and every parameter's gradient equal the plain run's within float32 noise
        var difference = GradientComparison.Of(plain, checkpointed);
        TestContext.Out.WriteLine($"loss {plainLoss.item<float>()} vs {loss.item<float>()}; block calls plain {plainCalls}, " +
            $"checkpointed forward {forwardCalls} + recompute {recomputeCalls}; {difference}");
        Assert.That(loss.item<float>(), Is.EqualTo(plainLoss.item<float>()).Within(1e-6).Percent);
        Assert.That(difference.Global, Is.LessThan(1e-6));
        Assert.That(difference.PerTensor, Is.LessThan(1e-5));
        // And every block really ran twice: once without a graph in forward, once in backward
        Assert.That(plainCalls, Is.EqualTo(18));
        Assert.That(forwardCalls, Is.EqualTo(plainCalls));
        Assert.That(recomputeCalls, Is.EqualTo(plainCalls));
    }
}
