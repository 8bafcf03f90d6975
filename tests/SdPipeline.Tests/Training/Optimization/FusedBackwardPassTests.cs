using SdPipeline.Config;
using SdPipeline.Lora;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Training.Checkpointing;
using SdPipeline.Training.Optimization;
using TorchSharp;
using static TorchSharp.torch;
using AdamW = SdPipeline.Training.Optimization.AdamW;

namespace SdPipeline.Tests.Training.Optimization;

/// <summary>train.fused_backward_pass: AdamW stepped inside backward gives the weights AdamW after backward gives, holding no gradients.</summary>
public sealed class FusedBackwardPassTests
{
    private const int Steps = 3;

    [TestCase(false)]
    [TestCase(true)]
    public void Steps_Should_GiveTheSameWeightsAndMomentsBitForBit_WithoutHoldingGradients(bool checkpointing)
    {
        // Given two copies of the tiny UNet, one stepped after backward and one inside it
        using var plain = TinyUnetStep.Load(size: 16);
        using var fused = TinyUnetStep.Load(size: 16);
        if (checkpointing)
        {
            GradientCheckpointing.Apply(plain.Unet);
            GradientCheckpointing.Apply(fused.Unet);
        }
        using var plainOptimizer = new AdamW(plain.Unet.named_parameters().Select(p => (p.name, p.parameter)).ToList());
        using var fusedOptimizer = new AdamW(fused.Unet.named_parameters().Select(p => (p.name, p.parameter)).ToList());
        using var pass = FusedBackwardPass.Attach(fusedOptimizer, fused.Unet);

        for (int step = 0; step < Steps; step++)
        {
            double lr = 1e-3 * (step + 1);
            double expectedNorm;
            using (torch.NewDisposeScope())
            {
                plain.Loss(plain.Predict()).backward();
                expectedNorm = GradientNorm.Measure(plain.Unet.parameters(), 0).Norm;
                plainOptimizer.Step(lr);
                plainOptimizer.ZeroGrad();
            }

            // When the fused copy takes the same step
            double norm;
            using (torch.NewDisposeScope())
            {
                pass.Begin(lr);
                fused.Loss(fused.Predict()).backward();
                var held = fused.Unet.named_parameters().Where(p => p.parameter.grad is not null).Select(p => p.name).ToList();
                Assert.That(held, Is.Empty, "gradients left in .grad after backward");
                norm = pass.Finish();
            }

            // Then it reports the same gradient norm (summed in another order)
            Assert.That(norm, Is.EqualTo(expectedNorm).Within(1e-5).Percent, $"step {step + 1}");
        }

        // And both copies hold the same weights and AdamW moments, bit for bit
        Assert.That(fusedOptimizer.StepCount, Is.EqualTo(Steps));
        var expected = plain.Unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, parameter) in fused.Unet.named_parameters())
            Assert.That(parameter.eq(expected[name]).all().item<bool>(), Is.True, name);
        var plainState = plainOptimizer.StateTensors();
        foreach (var (name, tensor) in fusedOptimizer.StateTensors())
            Assert.That(tensor.eq(plainState[name]).all().item<bool>(), Is.True, name);
    }

    [Test]
    public void LoraAdapters_Should_BeSteppedAfterBackward_ToTheSameValues()
    {
        // Given the tiny UNet twice with the same adapters (their parameters sit outside the training layers)
        using var plain = TinyUnetStep.Load(size: 16);
        using var fused = TinyUnetStep.Load(size: 16);
        var settings = new LoraSettings(4, 4, 0, Attention: true, Resnets: true, TextEncoder: false);
        using var plainNetwork = LoraNetwork.Create(plain.Unet, null, settings, seed: 7);
        using var fusedNetwork = LoraNetwork.Create(fused.Unet, null, settings, seed: 7);
        using var plainOptimizer = new AdamW(plainNetwork.Parameters());
        using var fusedOptimizer = new AdamW(fusedNetwork.Parameters());
        using var pass = FusedBackwardPass.Attach(fusedOptimizer, fused.Unet);

        // When each takes two steps (the adapters' up-projections start at zero, so the second step moves everything)
        for (int step = 0; step < 2; step++)
        {
            using (torch.NewDisposeScope())
            {
                plain.Loss(plain.Predict()).backward();
                plainOptimizer.Step(1e-2);
                plainOptimizer.ZeroGrad();
            }
            using (torch.NewDisposeScope())
            {
                pass.Begin(1e-2);
                fused.Loss(fused.Predict()).backward();
                pass.Finish();
                fusedOptimizer.ZeroGrad();
            }
        }

        // Then the adapters are equal bit for bit, and the frozen UNet weights were not touched
        var expected = plainNetwork.Parameters().ToDictionary(p => p.Name, p => p.Parameter);
        foreach (var (name, parameter) in fusedNetwork.Parameters())
            Assert.That(parameter.eq(expected[name]).all().item<bool>(), Is.True, name);
        using var original = TinyUnetStep.Load(size: 8);
        var originalWeights = original.Unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.That(fused.Unet.named_parameters().Where(p => originalWeights.ContainsKey(p.name)).All(p => p.parameter.eq(originalWeights[p.name]).all().item<bool>()), Is.True);
    }

    [Test]
    public void Route_Should_LeaveTheLayersAlone_OutsideAStep_And_AfterDispose()
    {
        using var model = TinyUnetStep.Load(size: 8);
        using var optimizer = new AdamW(model.Unet.named_parameters().Select(p => (p.name, p.parameter)).ToList());
        var pass = FusedBackwardPass.Attach(optimizer, model.Unet);

        // A forward with gradients but no step begun (a held-out pass with autograd on) accumulates as usual
        using (torch.NewDisposeScope()) model.Loss(model.Predict()).backward();
        Assert.That(model.Unet.parameters().All(p => p.grad is not null), Is.True);
        optimizer.ZeroGrad();

        // After Dispose the layers take their parameters directly again, even inside a begun step
        pass.Begin(1e-3);
        pass.Dispose();
        using (torch.NewDisposeScope()) model.Loss(model.Predict()).backward();
        Assert.That(model.Unet.parameters().All(p => p.grad is not null), Is.True);
    }

    [Test]
    public void TrainStage_Should_RefuseNamingTheKeys_When_FusedWithClippingAccumulationOrFp16()
    {
        static IReadOnlyList<string> Problems(params string[] sets) =>
            TrainStage.CheckConfig(ConfigLoader.Load(null, [$"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "train.fused_backward_pass=true", .. sets]));

        Assert.That(Problems("train.max_grad_norm=0"), Is.Empty);
        Assert.That(Problems("train.max_grad_norm=0", "train.mixed_precision=bf16"), Is.Empty);
        Assert.That(Problems(), Has.One.Contains("train.max_grad_norm=0 (now 1)").And.One.Contains("train.fused_backward_pass=false"));
        Assert.That(Problems("train.max_grad_norm=0", "train.gradient_accumulation_steps=4"), Has.One.Contains("train.gradient_accumulation_steps=1 (now 4)"));
        Assert.That(Problems("train.max_grad_norm=0", "train.mixed_precision=fp16"), Has.One.Contains("train.mixed_precision=bf16 or no"));
    }
}
