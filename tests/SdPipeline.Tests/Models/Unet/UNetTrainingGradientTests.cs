using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
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

        // And every parameter's gradient is within 1e-4 × that gradient's abs max. Exception: in the 32-channel
        // blocks each GroupNorm group holds one channel, so a GroupNorm removes any per-channel constant added before
        // it: conv1.bias and time_emb_proj (before norm2) there, and the biases ending the last up block (before
        // conv_norm_out), have a true gradient of 0, and both frameworks report rounding noise (~1e-9). Those are
        // checked to be noise on our side too.
        var parameters = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.That(parameters.Keys, Is.EquivalentTo(grads.Entries.Select(e => e.Name)));
        var expectedGrads = grads.Entries.ToDictionary(e => e.Name, e => grads.Read(e.Name));
        double noise = 1e-6 * expectedGrads.Values.Max(g => g.abs().max().item<float>());
        var failures = new List<string>();
        var zeroGradients = new List<string>();
        double worst = 0;
        string worstName = "";
        foreach (var (name, parameter) in parameters)
        {
            Assert.That(parameter.grad, Is.Not.Null, name);
            var expected = expectedGrads[name];
            double scale = expected.abs().max().item<float>();
            if (scale < noise)
            {
                zeroGradients.Add(name);
                double ours = parameter.grad!.abs().max().item<float>();
                if (ours >= noise) failures.Add($"{name}: {ours:E2} where diffusers has only rounding noise ({scale:E2})");
                continue;
            }
            double relative = (parameter.grad! - expected).abs().max().item<float>() / scale;
            if (relative > worst) (worst, worstName) = (relative, name);
            if (relative > 1e-4) failures.Add($"{name}: {relative:E2} of its abs max");
        }
        var gradNorm = torch.sqrt(torch.stack(parameters.Values.Select(p => p.grad!.pow(2).sum()).ToArray()).sum()).item<float>();
        double gradNormError = Math.Abs(gradNorm - step.Read("step0.grad_norm").item<float>()) / step.Read("step0.grad_norm").item<float>();
        TestContext.Out.WriteLine($"prediction {predictionError:E2}, loss (relative) {lossError:E2}, worst gradient {worstName} {worst:E2} of its abs max, " +
            $"grad_norm (relative) {gradNormError:E2}; {zeroGradients.Count} structurally zero gradients: {string.Join(", ", zeroGradients)}");
        Assert.That(failures, Is.Empty);
        Assert.That(gradNormError, Is.LessThan(1e-5));
    }
}
