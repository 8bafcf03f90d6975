using Newtonsoft.Json;
using Newtonsoft.Json.Serialization;
using SdPipeline.Models.Shared;
using SdPipeline.Training.Optimization;
using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

public sealed class DynamicLossScalerTests
{
    [Test]
    public void Step_Should_SkipTheStepAndHalveTheScale_When_AGradientOverflows()
    {
        // Given a float16 step whose scaled backward left an inf in one gradient
        using var scope = torch.NewDisposeScope();
        using var model = TinyModel();
        var parameters = model.parameters().ToList();
        var optimizer = torch.optim.AdamW(parameters, lr: 1e-2);
        var scaler = new DynamicLossScaler(parameters);
        Backward(model, scaler, ScalarType.Float16);
        parameters[2].grad![1, 3] = torch.tensor(float.PositiveInfinity);
        var before = parameters.Select(p => p.detach().clone()).ToList();

        // When the scaler is asked to step
        bool optimizerRan = false;
        bool stepped = scaler.Step(() =>
        {
            optimizerRan = true;
            optimizer.step();
        });

        // Then the optimizer never ran, no parameter moved, and the scale was halved
        Assert.That(stepped, Is.False);
        Assert.That(optimizerRan, Is.False);
        for (int i = 0; i < parameters.Count; i++)
            Assert.That(parameters[i].data<float>().ToArray(), Is.EqualTo(before[i].data<float>().ToArray()));
        Assert.That(scaler.Scale, Is.EqualTo(32768));
        Assert.That(scaler.SkippedSteps, Is.EqualTo(1));
        Assert.That(scaler.LastStepSkipped, Is.True);
        Assert.That(scaler.GrowthTracker, Is.Zero);
    }

    [Test]
    public void Step_Should_SkipTheStep_When_TheScaledLossOverflowsFloat16InBackward()
    {
        // Given a scale so large (2^40) that the float16 backward overflows by itself
        using var scope = torch.NewDisposeScope();
        using var model = TinyModel();
        var scaler = new DynamicLossScaler(model.parameters(), initScale: Math.Pow(2, 40));
        Backward(model, scaler, ScalarType.Float16);

        // When the gradients are unscaled and the step is attempted
        bool finite = scaler.UnscaleGradients();
        bool stepped = scaler.Step(() => Assert.Fail("the optimizer must not step on overflowed gradients"));

        // Then the overflow was found, the step skipped and the scale backed off
        Assert.That(finite, Is.False);
        Assert.That(stepped, Is.False);
        Assert.That(scaler.Scale, Is.EqualTo(Math.Pow(2, 39)));
    }

    [Test]
    public void Step_Should_GiveTheOptimizerTheUnscaledGradients_When_TheyAreFinite()
    {
        // Given the gradients of an unscaled float32 backward
        using var scope = torch.NewDisposeScope();
        using var model = TinyModel();
        var parameters = model.parameters().ToList();
        Backward(model, scaler: null, dtype: null);
        var expected = parameters.Select(p => p.grad!.clone()).ToList();
        foreach (var parameter in parameters) parameter.grad!.zero_();

        // When the same loss is scaled by 2^16 and unscaled (twice: before clipping, then by Step)
        var scaler = new DynamicLossScaler(parameters);
        Backward(model, scaler, dtype: null);
        Assert.That(scaler.UnscaleGradients(), Is.True);
        List<Tensor>? seen = null;
        bool stepped = scaler.Step(() => seen = parameters.Select(p => p.grad!.clone()).ToList());

        // Then the optimizer saw the true gradients, divided exactly once (scaling by a power of 2 is exact)
        Assert.That(stepped, Is.True);
        for (int i = 0; i < parameters.Count; i++)
            Assert.That(seen![i].data<float>().ToArray(), Is.EqualTo(expected[i].data<float>().ToArray()));
        Assert.That(scaler.Scale, Is.EqualTo(65536));
        Assert.That(scaler.GrowthTracker, Is.EqualTo(1));
        Assert.That(scaler.SkippedSteps, Is.Zero);
    }

    [Test]
    public void Step_Should_DoubleTheScale_When_GrowthIntervalFiniteStepsFollowEachOther()
    {
        // Given a scaler that grows after 3 finite steps, which has just backed off once
        using var scope = torch.NewDisposeScope();
        using var model = TinyModel();
        var parameters = model.parameters().ToList();
        var scaler = new DynamicLossScaler(parameters, growthInterval: 3);
        Backward(model, scaler, ScalarType.Float16);
        parameters[0].grad![0, 0] = torch.tensor(float.NaN);
        scaler.Step(() => { });
        Assert.That(scaler.Scale, Is.EqualTo(32768));

        // When finite steps follow, then the scale holds for two and doubles on the third
        for (int step = 1; step <= 3; step++)
        {
            model.zero_grad();
            Backward(model, scaler, ScalarType.Float16);
            Assert.That(scaler.Step(() => { }), Is.True);
            Assert.That(scaler.Scale, Is.EqualTo(step < 3 ? 32768 : 65536), $"after finite step {step}");
            Assert.That(scaler.GrowthTracker, Is.EqualTo(step % 3));
        }
        Assert.That(scaler.SkippedSteps, Is.EqualTo(1));
    }

    [Test]
    public void ExportState_Should_RoundTripThroughACheckpoint_AndTheGrowthContinues()
    {
        // Given a scaler with a history: one skipped step, then two finite ones
        using var scope = torch.NewDisposeScope();
        using var model = TinyModel();
        var parameters = model.parameters().ToList();
        var scaler = new DynamicLossScaler(parameters, growthInterval: 3);
        parameters[0].grad = torch.full_like(parameters[0], float.PositiveInfinity);
        scaler.Step(() => { });
        for (int i = 0; i < 2; i++)
        {
            model.zero_grad();
            Backward(model, scaler, dtype: null);
            scaler.Step(() => { });
        }

        // When its state goes through a JSON checkpoint into a fresh scaler
        var settings = new JsonSerializerSettings { ContractResolver = new DefaultContractResolver { NamingStrategy = new SnakeCaseNamingStrategy() } };
        string json = JsonConvert.SerializeObject(scaler.ExportState(), settings);
        var resumed = new DynamicLossScaler(parameters, growthInterval: 3);
        resumed.ImportState(JsonConvert.DeserializeObject<LossScalerState>(json, settings)!);

        // Then it holds the same scale and counts, and grows on the next finite step as the original would
        TestContext.Out.WriteLine(json);
        Assert.That(json, Is.EqualTo("{\"scale\":32768.0,\"growth_tracker\":2,\"skipped_steps\":1}"));
        Assert.That(resumed.ExportState(), Is.EqualTo(scaler.ExportState()));
        model.zero_grad();
        Backward(model, resumed, dtype: null);
        resumed.Step(() => { });
        Assert.That(resumed.Scale, Is.EqualTo(65536));
    }

    [Test]
    public void ImportState_Should_Refuse_When_TheStateIsInconsistent()
    {
        var scaler = new DynamicLossScaler([]);
        Assert.Throws<ArgumentException>(() => scaler.ImportState(new LossScalerState(0, 0, 0)));
        Assert.Throws<ArgumentException>(() => scaler.ImportState(new LossScalerState(double.PositiveInfinity, 0, 0)));
        Assert.Throws<ArgumentException>(() => scaler.ImportState(new LossScalerState(1024, -1, 0)));
        var disabled = DynamicLossScaler.For(MixedPrecision.Bf16, []);
        var error = Assert.Throws<ArgumentException>(() => disabled.ImportState(new LossScalerState(1024, 0, 3)));
        Assert.That(error!.Message, Does.Contain("fp16"));
    }

    [Test]
    public void Constructor_Should_Refuse_When_AFactorOrTheIntervalIsOutOfRange()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScaler([], initScale: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScaler([], growthFactor: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScaler([], backoffFactor: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScaler([], growthInterval: 0));
    }

    [TestCase("no")]
    [TestCase("bf16")]
    public void For_Should_PassEverythingThrough_When_ThePrecisionNeedsNoLossScaling(string precision)
    {
        // Given the scaler of a float32 or bfloat16 run
        using var scope = torch.NewDisposeScope();
        using var model = TinyModel();
        var scaler = DynamicLossScaler.For(MixedPrecision.Parse(precision), model.parameters());
        var loss = torch.tensor(0.25f);

        // When it scales a loss and steps
        var scaled = scaler.ScaleLoss(loss);
        int steps = 0;
        bool stepped = scaler.Step(() => steps++);

        // Then nothing was scaled, checked or skipped
        Assert.That(scaler.Enabled, Is.False);
        Assert.That(scaled.item<float>(), Is.EqualTo(0.25f));
        Assert.That(scaler.Scale, Is.EqualTo(1));
        Assert.That(stepped, Is.True);
        Assert.That(steps, Is.EqualTo(1));
        Assert.That(scaler.SkippedSteps, Is.Zero);
        Assert.That(DynamicLossScaler.For(MixedPrecision.Fp16, []).Enabled, Is.True);
    }

    // Two precision-aware layers: a float16 region runs them in half precision, as in the UNet.
    private static Sequential TinyModel()
    {
        torch.manual_seed(7);
        return nn.Sequential(("0", new AutocastLinear(nn.Linear(8, 16))), ("1", nn.Tanh()), ("2", new AutocastLinear(nn.Linear(16, 4))));
    }

    private static void Backward(Sequential model, DynamicLossScaler? scaler, ScalarType? dtype)
    {
        var input = torch.randn(32, 8, generator: new Generator(21));
        var target = torch.randn(32, 4, generator: new Generator(22));
        Tensor loss;
        using (Autocast.Enter(dtype)) loss = AutocastOps.MseLoss(model.call(input), target);
        (scaler is null ? loss : scaler.ScaleLoss(loss)).backward();
    }
}
