using SdPipeline.Models.Unet;
using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Training.Optimization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>Two steps of diffusers' train_text_to_image.py loop (objective, backward, AdamW) against the fixtures.</summary>
public sealed class TrainingStepParityTests
{
    [TestCase("train_step_epsilon", "epsilon", 0.0)]
    [TestCase("train_step_epsilon_snr5", "epsilon", 5.0)]
    [TestCase("train_step_vpred_snr5", "v_prediction", 5.0)]
    public void TwoSteps_Should_MatchDiffusers(string fixtureName, string predictionType, double snrGamma)
    {
        // Given the tiny UNet, the scheduler's noise schedule, our objective and AdamW with the fixture's settings
        using var fixture = FixtureTensors.OpenParity(fixtureName);
        var folder = DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd"));
        using var unet = UNet2DConditionModel.FromFolder(folder);
        unet.train();
        using var schedule = new NoiseSchedule(SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json")));
        var objective = new TrainingObjective(schedule, predictionType, snrGamma: snrGamma);
        var parameters = unet.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        using var optimizer = new AdamW(parameters, 0.9, 0.999, 1e-2, 1e-8);
        var tracked = fixture.Names.Where(n => n.StartsWith("step0.param_after.")).Select(n => n["step0.param_after.".Length..]).ToList();

        for (int step = 0; step < 2; step++)
        {
            using var scope = torch.NewDisposeScope();
            Tensor Get(string name) => fixture.Get($"step{step}.{name}");

            // When one training step runs on the stored inputs
            var batch = objective.Build(Get("latents"), Get("noise"), Get("noise"), Get("timesteps"));
            var prediction = unet.call(batch.NoisyLatents, batch.Timesteps, Get("encoder_hidden_states"));
            var loss = objective.Loss(prediction, batch.Target, batch.Timesteps);
            loss.backward();

            // Then input, target, loss and gradients match
            Assert.That(MaxAbs(batch.NoisyLatents, Get("noisy_latents")), Is.LessThan(1e-5), $"step {step} noisy latents");
            Assert.That(MaxAbs(batch.Target, Get("target")), Is.LessThan(1e-5), $"step {step} target");
            double expectedLoss = Get("loss").item<float>();
            Assert.That(loss.item<float>(), Is.EqualTo(expectedLoss).Within(1e-5 * Math.Abs(expectedLoss)), $"step {step} loss");
            foreach (string name in tracked)
            {
                var expected = Get($"grad.{name}");
                var grad = parameters.Single(p => p.name == name).parameter.grad!;
                Assert.That(MaxAbs(grad, expected), Is.LessThanOrEqualTo(1e-4 * expected.abs().max().item<float>()), $"step {step} grad {name}");
            }

            // And the AdamW update moves the parameters where PyTorch's does
            optimizer.Step(1e-4);
            optimizer.ZeroGrad();
            foreach (string name in tracked)
            {
                var expected = Get($"param_after.{name}");
                var actual = parameters.Single(p => p.name == name).parameter;
                var difference = (actual - expected).abs();
                double beyond = difference.gt(1e-6).sum().item<long>() / (double)difference.NumberOfElements;
                TestContext.Out.WriteLine($"step {step} {name}: max {difference.max().item<float>():E2}, {beyond:P3} above 1e-6");
                // The README's rule: an element whose gradient is float noise around 0 may flip sign (≤ 2·lr off).
                Assert.That(beyond, Is.LessThanOrEqualTo(0.001), $"step {step} {name}: share of elements off by more than 1e-6");
                Assert.That(difference.max().item<float>(), Is.LessThanOrEqualTo(2e-4 + 1e-6), $"step {step} {name}");
            }
        }
    }

    [Test]
    public void MinSnrWeights_Should_MatchTheFixture()
    {
        using var fixture = FixtureTensors.OpenParity("train_step_vpred_snr5");
        using var schedule = new NoiseSchedule(SchedulerConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "scheduler", "scheduler_config.json")));
        using var timesteps = fixture.Get("step0.timesteps");

        using var snr = schedule.ComputeSnr(timesteps);

        Assert.That(MaxAbs(snr, fixture.Get("step0.snr")), Is.LessThanOrEqualTo(1e-6 * fixture.Get("step0.snr").abs().max().item<float>()));
    }

    private static double MaxAbs(Tensor a, Tensor b) => (a.to(ScalarType.Float32) - b.to(ScalarType.Float32)).abs().max().item<float>();
}
