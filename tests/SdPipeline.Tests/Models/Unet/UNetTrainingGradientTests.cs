using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Verification;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Unet;

/// <summary>
/// Step 0 of diffusers' train_text_to_image.py on the tiny UNet (fixtures/parity/train_step_epsilon*): from the
/// recorded noisy latents, timesteps, text embeddings and target, the prediction, the MSE loss and the gradient
/// of every parameter after backward.
/// </summary>
public sealed class UNetTrainingGradientTests
{
    [Test]
    public void Backward_Should_GiveDiffusersGradientForEveryParameter_When_TrainingOnTheRecordedStep()
    {
        // Given the tiny UNet in train mode and step 0's inputs
        using var scope = torch.NewDisposeScope();
        using var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        unet.train();
        using var step = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "train_step_epsilon.safetensors"));
        using var grads = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "train_step_epsilon_all_grads_step0.safetensors"));

        // When it predicts, takes the mean squared error against the target and back-propagates
        var prediction = unet.call(step.Read("step0.noisy_latents"), step.Read("step0.timesteps"), step.Read("step0.encoder_hidden_states"));
        var loss = nn.functional.mse_loss(prediction.to(ScalarType.Float32), step.Read("step0.target").to(ScalarType.Float32), nn.Reduction.Mean);
        loss.backward();

        // Then prediction and loss equal diffusers' (atol 1e-4; loss rtol 1e-5, fixtures/README.md)
        double predictionError = (prediction - step.Read("step0.model_pred")).abs().max().item<float>();
        double expectedLoss = step.Read("step0.loss").item<float>();
        double lossError = Math.Abs(loss.item<float>() - expectedLoss) / expectedLoss;
        Assert.That(predictionError, Is.LessThan(1e-4));
        Assert.That(lossError, Is.LessThan(1e-5));

        // And every parameter's gradient is within 1e-4 × that gradient's abs max, except those whose true gradient is
        // 0 (a GroupNorm over one-channel groups removes a per-channel constant), where both frameworks report rounding
        // noise: ours must be noise too (GradientComparison, shared with `sdpipe verify`).
        var parameters = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.That(parameters.Keys, Is.EquivalentTo(grads.Entries.Select(e => e.Name)));
        var comparisons = GradientComparison.Compare(parameters.Select(p => (p.Key, (Tensor?)p.Value.grad, grads.Read(p.Key))).ToList());
        var failures = comparisons.Where(c => !c.Passed).Select(c => $"{c.Name}: {c.Detail}").ToList();
        var worst = comparisons.Where(c => c.Tolerance == ParityTolerance.Gradient).MaxBy(c => c.MaxRelError)!;
        var zeroGradients = comparisons.Where(c => c.Tolerance != ParityTolerance.Gradient).Select(c => c.Name).ToList();
        var gradNorm = torch.sqrt(torch.stack(parameters.Values.Select(p => p.grad!.pow(2).sum()).ToArray()).sum()).item<float>();
        double gradNormError = Math.Abs(gradNorm - step.Read("step0.grad_norm").item<float>()) / step.Read("step0.grad_norm").item<float>();
        TestContext.Out.WriteLine($"prediction {predictionError:E2}, loss (relative) {lossError:E2}, worst gradient {worst.Name} {worst.MaxRelError:E2} of its abs max, " +
            $"grad_norm (relative) {gradNormError:E2}; {zeroGradients.Count} structurally zero gradients: {string.Join(", ", zeroGradients)}");
        Assert.That(failures, Is.Empty);
        Assert.That(gradNormError, Is.LessThan(1e-5));
    }
}
