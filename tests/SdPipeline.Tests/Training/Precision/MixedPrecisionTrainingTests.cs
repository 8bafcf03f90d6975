using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

/// <summary>A few AdamW steps of the tiny UNet on the recorded step's inputs, in each mixed-precision mode.</summary>
public sealed class MixedPrecisionTrainingTests
{
    [Test]
    public void Training_Should_ReduceTheLossWithoutAScaler_When_PrecisionIsBf16()
    {
        // A 16×16 crop: bfloat16 has no hardware support on this kind of CPU and is slower than float32
        var (losses, scaler) = Train(MixedPrecision.Bf16, steps: 2, crop: 16);

        TestContext.Out.WriteLine($"bf16 losses: {string.Join(", ", losses.Select(l => l.ToString("F5")))}");
        Assert.That(scaler.Enabled, Is.False);
        Assert.That(scaler.Scale, Is.EqualTo(1));
        Assert.That(scaler.SkippedSteps, Is.Zero);
        Assert.That(losses[^1], Is.LessThan(losses[0]));
    }

    [Test]
    public void Training_Should_ReduceTheLossWithTheScaler_When_PrecisionIsFp16()
    {
        // Two steps on an 8×8 crop: libtorch's float16 convolution backward is ~50× slower than float32 on a CPU
        var (losses, scaler) = Train(MixedPrecision.Fp16, steps: 2, crop: 8);

        TestContext.Out.WriteLine($"fp16 losses: {string.Join(", ", losses.Select(l => l.ToString("F5")))}; " +
            $"scale {scaler.Scale}, skipped {scaler.SkippedSteps}");
        Assert.That(scaler.Enabled, Is.True);
        Assert.That(scaler.SkippedSteps, Is.LessThan(2));
        Assert.That(losses[^1], Is.LessThan(losses[0]));
    }

    // The loss before each step and after the last one.
    private static (List<float> Losses, DynamicLossScaler Scaler) Train(MixedPrecision precision, int steps, int crop)
    {
        using var scope = torch.NewDisposeScope();
        using var step = TinyUnetStep.Load(crop);
        var parameters = step.Unet.parameters().ToList();
        using var optimizer = torch.optim.AdamW(parameters, lr: 1e-3);
        var scaler = DynamicLossScaler.For(precision, parameters);
        var losses = new List<float>();
        Tensor Loss()
        {
            Tensor prediction;
            using (precision.EnterAutocast()) prediction = step.Predict();
            return step.Loss(prediction);
        }

        for (int i = 0; i < steps; i++)
        {
            using var stepScope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = Loss();
            scaler.ScaleLoss(loss).backward();
            scaler.Step(() => optimizer.step());
            losses.Add(loss.item<float>());
        }
        using (torch.no_grad()) losses.Add(Loss().item<float>());
        Assert.That(parameters.Select(p => p.dtype), Is.All.EqualTo(ScalarType.Float32));
        return (losses, scaler);
    }
}
