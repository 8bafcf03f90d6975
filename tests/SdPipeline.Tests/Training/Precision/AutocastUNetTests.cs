using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

/// <summary>The tiny fixture UNet under autocast: half-precision kernels really run, and the result stays close to float32.</summary>
public sealed class AutocastUNetTests
{
    // Measured max |difference| relative to the output's abs max: bf16 1.3e-2 (8 significant bits), fp16 1.6e-3 (11).
    [TestCase(ScalarType.BFloat16, 5e-2)]
    [TestCase(ScalarType.Float16, 1e-2)]
    public void Forward_Should_StayCloseToFloat32_When_InsideAnAutocastRegion(ScalarType dtype, double tolerance)
    {
        // Given the tiny UNet's float32 prediction for the recorded step
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var step = TinyUnetStep.Load();
        var expected = step.Predict();

        // When it predicts inside an autocast region
        Tensor actual;
        using (Autocast.Enter(dtype)) actual = step.Predict();

        // Then the output comes out of a half-precision convolution and is within that precision's rounding of float32
        double relative = (actual.to(ScalarType.Float32) - expected).abs().max().item<float>() / expected.abs().max().item<float>();
        TestContext.Out.WriteLine($"{dtype}: max |difference| {relative:E2} of the float32 output's abs max");
        Assert.That(actual.dtype, Is.EqualTo(dtype));
        Assert.That(relative, Is.GreaterThan(0).And.LessThan(tolerance));
    }

    [TestCase(ScalarType.BFloat16)]
    [TestCase(ScalarType.Float16)]
    public void Backward_Should_LeaveFloat32GradientsOnFloat32Parameters_When_TheForwardRanUnderAutocast(ScalarType dtype)
    {
        // Given the tiny UNet and an 8×8 crop of the recorded step (float16 convolution backward is slow on a CPU)
        using var scope = torch.NewDisposeScope();
        using var step = TinyUnetStep.Load(size: 8);

        // When the forward runs in a region and the float32 loss back-propagates after it
        Tensor prediction;
        using (Autocast.Enter(dtype)) prediction = step.Predict();
        var loss = step.Loss(prediction);
        loss.backward();

        // Then every parameter is still float32 and holds a finite float32 gradient
        Assert.That(prediction.dtype, Is.EqualTo(dtype));
        Assert.That(loss.dtype, Is.EqualTo(ScalarType.Float32));
        foreach (var (name, parameter) in step.Unet.named_parameters())
        {
            Assert.That(parameter.dtype, Is.EqualTo(ScalarType.Float32), name);
            Assert.That(parameter.grad, Is.Not.Null, name);
            Assert.That(parameter.grad!.dtype, Is.EqualTo(ScalarType.Float32), name);
            Assert.That(parameter.grad.isfinite().all().item<bool>(), Is.True, name);
        }
    }
}
