using SdPipeline.Models.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Shared;

public sealed class TimestepsTests
{
    [Test]
    public void Forward_Should_PutSinFirstAndDivideByHalfMinusShift_When_NotFlippedWithShiftOne()
    {
        // Given the DDPM/LDM convention: sin half first, downscale_freq_shift 1 → frequencies 10000^(-i/(half-1))
        using var embedding = new Timesteps(4, flipSinToCos: false, downscaleFreqShift: 1);

        var result = embedding.call(torch.tensor(new long[] { 0, 3 })).data<float>().ToArray();

        // Then t=3 embeds as [sin 3, sin 3e-4, cos 3, cos 3e-4]
        Assert.That(result[..4], Is.EqualTo(new float[] { 0, 0, 1, 1 }));
        Assert.That(result[4..], Is.EqualTo(new[] { MathF.Sin(3), MathF.Sin(3e-4f), MathF.Cos(3), MathF.Cos(3e-4f) }).Within(1e-6));
    }

    [Test]
    public void Forward_Should_PutCosFirst_And_PadOddWidths_When_FlippedAsInStableDiffusion()
    {
        using var embedding = new Timesteps(5, flipSinToCos: true, downscaleFreqShift: 0);

        var result = embedding.call(torch.tensor(new[] { 2.5f })).data<float>().ToArray();

        // half = 2 → frequencies 1 and 10000^(-1/2) = 0.01; the fifth value is zero padding
        Assert.That(result, Is.EqualTo(new[] { MathF.Cos(2.5f), MathF.Cos(0.025f), MathF.Sin(2.5f), MathF.Sin(0.025f), 0f }).Within(1e-6));
    }
}
