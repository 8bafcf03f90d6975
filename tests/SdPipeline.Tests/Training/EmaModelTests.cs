using SdPipeline.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>The EMA's one-pass update against diffusers' <c>s_param.sub_(one_minus_decay * (s_param - param))</c>.</summary>
public sealed class EmaModelTests
{
    [Test]
    public void Step_Should_GiveTheBitsOfTheOpByOpUpdate_OverSeveralSteps()
    {
        // Given parameters of odd sizes (the scalar tail) and one of several chunks, one of them frozen
        torch.manual_seed(3);
        var parameters = new long[][] { [3], [17, 5], [300_001], [64, 3, 3, 3] }
            .Select((shape, i) => ($"p{i}", new Parameter(torch.randn(shape), requires_grad: i != 1))).ToList();
        using var ema = new EmaModel(parameters, new EmaSettings(Decay: 0.999), torch.CPU);
        var expected = parameters.Select(p => p.Item2.detach().clone()).ToList();

        // When the parameters move and the average follows them five times (decay 0, then (1 + s)/(10 + s))
        for (int step = 1; step <= 5; step++)
        {
            using (torch.no_grad())
                foreach (var (_, parameter) in parameters) parameter.add_(torch.randn(parameter.shape) * 0.1);
            ema.Step(parameters);
            double oneMinusDecay = 1 - ema.DecayAt(step);
            foreach (var (reference, (_, parameter)) in expected.Zip(parameters))
            {
                if (parameter.requires_grad) reference.sub_((reference - parameter.detach()) * oneMinusDecay);
                else reference.copy_(parameter.detach());
            }
        }

        // Then every average is the op-by-op form's to the bit
        foreach (var (reference, (name, _)) in expected.Zip(parameters))
            Assert.That(torch.equal(ema.Shadow[name], reference).all().item<bool>(), Is.True, name);
        Assert.That(ema.CurrentDecay, Is.EqualTo(5.0 / 14.0).Within(1e-15), "(1 + 4) / (10 + 4) at the fifth step");
    }
}
