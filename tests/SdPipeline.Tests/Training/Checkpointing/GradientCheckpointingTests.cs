using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Training.Checkpointing;
using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
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

    [Test]
    public void Backward_Should_GiveThePlainGradients_When_BlocksAreCheckpointedUnderBf16Autocast()
    {
        // Given the recorded step (a 16×16 crop: bfloat16 is slow on a CPU) run plainly under bfloat16 autocast
        using var scope = torch.NewDisposeScope();
        using var step = TinyUnetStep.Load(size: 16);
        Tensor plainLoss;
        using (Autocast.Enter(ScalarType.BFloat16)) plainLoss = step.Loss(step.Predict());
        plainLoss.backward();
        var plain = step.Gradients();
        step.Unet.zero_grad();

        // When the checkpointed forward runs under bfloat16 and its backward, as usual, outside the region
        GradientCheckpointing.Apply(step.Unet);
        Tensor loss;
        using (Autocast.Enter(ScalarType.BFloat16)) loss = step.Loss(step.Predict());
        loss.backward();
        var checkpointed = step.Gradients();

        // Then the gradients are the plain bfloat16 run's within bfloat16 rounding: gradients summed in another order
        // differ by ~2^-8 relative. Measured: 2.6e-3 of the largest gradient, 1.3e-2 of the worst tensor's abs max;
        // float32 against bfloat16 differ by 9.1e-3 and 5.7e-2.
        var difference = GradientComparison.Of(plain, checkpointed);
        TestContext.Out.WriteLine($"bf16: loss {plainLoss.item<float>()} vs {loss.item<float>()}; {difference}");
        Assert.That(loss.item<float>(), Is.EqualTo(plainLoss.item<float>()));
        Assert.That(difference.Global, Is.LessThan(5e-3));
        Assert.That(difference.PerTensor, Is.LessThan(3e-2));
    }

    [Test]
    public void Backward_Should_RecomputeInTheForwardsPrecision_When_ItRunsOutsideTheRegionOnAnotherThread()
    {
        // Given a block's plain gradients under bfloat16 autocast
        using var scope = torch.NewDisposeScope();
        using var block = new ConditionalBlock();
        var input = torch.randn(3, 4, generator: new Generator(1)).requires_grad_();
        using (Autocast.Enter(ScalarType.BFloat16)) block.call(input, null).sum().backward();
        var expectedInput = input.grad!.clone();
        var expectedWeight = block.Weight.grad!.clone();
        input.grad!.zero_();
        block.Weight.grad!.zero_();
        block.Calls.Clear();

        // When its checkpointed forward runs under bfloat16, and backward outside any region on another thread
        Tensor output;
        using (Autocast.Enter(ScalarType.BFloat16)) output = GradientCheckpointing.Checkpoint(block, input, null);
        var backward = new Thread(() => output.sum().backward());
        backward.Start();
        backward.Join();

        // Then the recompute ran under bfloat16 on the backward's thread, and the gradients are the plain ones
        Assert.That(block.Calls, Has.Count.EqualTo(2));
        Assert.That(block.Calls[0], Is.EqualTo((ScalarType.BFloat16, Environment.CurrentManagedThreadId)));
        Assert.That(block.Calls[1], Is.EqualTo((ScalarType.BFloat16, backward.ManagedThreadId)));
        Assert.That(output.dtype, Is.EqualTo(ScalarType.BFloat16));
        Assert.That(input.grad!.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That((input.grad! - expectedInput).abs().max().item<float>(), Is.Zero);
        Assert.That((block.Weight.grad! - expectedWeight).abs().max().item<float>(), Is.Zero);
    }

    [Test]
    public void Runner_Should_CallEachBlockOnce_When_GradientsAreOff()
    {
        // Given a checkpointed UNet and its plain output
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var step = TinyUnetStep.Load();
        var expected = step.Predict();
        var calls = step.CountBlockCalls();
        GradientCheckpointing.Apply(step.Unet);

        // When it predicts without gradients (sampling, validation)
        var output = step.Predict();

        // Then every block runs once, as it is, with the same result
        Assert.That(calls(), Is.EqualTo(18));
        Assert.That((output - expected).abs().max().item<float>(), Is.Zero);
    }

    [Test]
    public void Backward_Should_ReachTheBlocksParameters_When_NoBlockInputRequiresAGradient()
    {
        // Given a UNet whose input convolution and time embedding are frozen, so no block input requires a gradient
        // (as in adapter training), and its plain gradients
        using var scope = torch.NewDisposeScope();
        using var step = TinyUnetStep.Load();
        foreach (var (name, parameter) in step.Unet.named_parameters())
            if (name.StartsWith("conv_in.") || name.StartsWith("time_embedding.")) parameter.requires_grad = false;
        step.Loss(step.Predict()).backward();
        var plain = Trainable(step.Gradients());
        step.Unet.zero_grad();

        // When the blocks are checkpointed
        GradientCheckpointing.Apply(step.Unet);
        step.Loss(step.Predict()).backward();
        var checkpointed = Trainable(step.Gradients());

        // Then the blocks' parameters still get their gradients, the plain ones
        var difference = GradientComparison.Of(plain, checkpointed);
        TestContext.Out.WriteLine(difference);
        Assert.That(difference.Global, Is.LessThan(1e-6));
    }

    [Test]
    public void Runner_Should_CheckpointABlock_When_ItsConditionIsNull()
    {
        // Given a block y = tanh(W x) (+ c when given) whose input requires a gradient
        using var scope = torch.NewDisposeScope();
        using var block = new ConditionalBlock();
        var input = torch.randn(3, 4, generator: new Generator(1)).requires_grad_();
        block.call(input, null).sum().backward();
        var expectedInput = input.grad!.clone();
        var expectedWeight = block.Weight.grad!.clone();
        input.grad!.zero_();
        block.Weight.grad!.zero_();

        // When it runs through the checkpointing runner without a condition
        GradientCheckpointing.Checkpoint(block, input, null).sum().backward();

        // Then its input and its parameter get the plain gradients, and it ran twice
        Assert.That(torch.allclose(input.grad!, expectedInput, rtol: 1e-6, atol: 1e-7), Is.True);
        Assert.That(torch.allclose(block.Weight.grad!, expectedWeight, rtol: 1e-6, atol: 1e-7), Is.True);
        Assert.That(block.Calls, Has.Count.EqualTo(3));
    }

    [Test]
    public void Backward_Should_FreeTheBlocksSavedInput_When_ItsBackwardHasRun()
    {
        // Given a checkpointed block whose output stays alive (and with it the graph, as a loss keeps it during backward)
        using var scope = torch.NewDisposeScope();
        using var block = new ConditionalBlock();
        var input = torch.randn(3, 4, generator: new Generator(2)).requires_grad_();
        var output = GradientCheckpointing.Checkpoint(block, input, null);
        long before = SavedTensors.Released;

        // When backward runs through it
        output.sum().backward();

        // Then the input it saved was freed as its backward returned, not with the graph (libtorch's own nodes do the same)
        Assert.That(SavedTensors.Released - before, Is.EqualTo(1));
        Assert.That(input.grad, Is.Not.Null);
    }

    [Test]
    public void Runner_Should_LeaveNoTensorHandleBehind_When_AStepIsOver()
    {
        // Given the tiny UNet, checkpointed, after a first step (so that lazily created state exists), and no handle
        // waiting for the garbage collector
        using var step = TinyUnetStep.Load();
        GradientCheckpointing.Apply(step.Unet);
        long RunStep()
        {
            using (var stepScope = torch.NewDisposeScope())
            {
                step.Unet.zero_grad();
                step.Loss(step.Predict()).backward();
            }
            ReturnedGradients.Release();
            return Tensor.TotalCount;
        }
        RunStep();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long before = Tensor.TotalCount;

        // When more steps run in their dispose scopes
        long after = RunStep();
        after = RunStep();

        // Then no tensor handle made by the checkpointing is left alive, nor left to the garbage collector
        TestContext.Out.WriteLine($"live tensor handles after a step: {before}, after two more: {after}");
        Assert.That(after, Is.EqualTo(before));
    }

    [Test]
    public void Apply_Should_Refuse_When_TheUNetUsesDropout()
    {
        // Given a UNet configured with dropout (built on the meta device: shapes only)
        var json = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "unet", "config.json")));
        json["dropout"] = 0.1;
        using var unet = new UNet2DConditionModel(UNet2DConditionConfig.Parse(json, "test"), new Device(DeviceType.META));

        // When checkpointing is applied, then it is refused (a recompute would draw other dropout masks)
        var error = Assert.Throws<NotSupportedException>(() => GradientCheckpointing.Apply(unet));
        Assert.That(error!.Message, Does.Contain("dropout"));
        Assert.That(GradientCheckpointing.IsApplied(unet), Is.False);
    }

    private static Dictionary<string, Tensor?> Trainable(Dictionary<string, Tensor?> gradients) =>
        gradients.Where(g => g.Value is not null).ToDictionary(g => g.Key, g => g.Value);

    private sealed class ConditionalBlock : nn.Module<Tensor, Tensor?, Tensor>
    {
        public ConditionalBlock() : base(nameof(ConditionalBlock))
        {
            Weight = nn.Parameter(torch.randn(4, 4, generator: new Generator(2)));
            register_parameter("weight", Weight);
        }

        public Parameter Weight { get; }

        // The autocast dtype and the thread of every call.
        public List<(ScalarType?, int)> Calls { get; } = [];

        public override Tensor forward(Tensor input, Tensor? condition)
        {
            Calls.Add((Autocast.Current, Environment.CurrentManagedThreadId));
            var output = torch.tanh(AutocastOps.Linear(input, Weight, null));
            return condition is null ? output : output + condition;
        }
    }
}
