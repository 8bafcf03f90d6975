using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Training.Precision;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>
/// The tiny fixture UNet and step 0 of the recorded training step (parity/train_step_epsilon.safetensors), for
/// precision and checkpointing tests that compare a modified training step with the plain one.
/// </summary>
internal sealed class TinyUnetStep : IDisposable
{
    private TinyUnetStep(UNet2DConditionModel unet, Tensor noisyLatents, Tensor timesteps, Tensor encoderHiddenStates, Tensor target)
    {
        Unet = unet;
        NoisyLatents = noisyLatents;
        Timesteps = timesteps;
        EncoderHiddenStates = encoderHiddenStates;
        Target = target;
    }

    public UNet2DConditionModel Unet { get; }
    public Tensor NoisyLatents { get; }
    public Tensor Timesteps { get; }
    public Tensor EncoderHiddenStates { get; }
    public Tensor Target { get; }

    /// <summary>
    /// Loads the UNet (train mode) and the inputs, the latents and target cropped to their top-left
    /// <paramref name="size"/>×<paramref name="size"/> (32: all of them) to make slow precisions affordable on a CPU.
    /// The tensors are detached from any dispose scope.
    /// </summary>
    public static TinyUnetStep Load(int size = 32)
    {
        var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        AutocastLayers.Apply(unet);
        unet.train();
        using var scope = torch.NewDisposeScope();
        using var step = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "train_step_epsilon.safetensors"));
        return new TinyUnetStep(unet,
            step.Read("step0.noisy_latents")[.., .., ..size, ..size].contiguous().DetachFromDisposeScope(),
            step.Read("step0.timesteps").DetachFromDisposeScope(),
            step.Read("step0.encoder_hidden_states").DetachFromDisposeScope(),
            step.Read("step0.target")[.., .., ..size, ..size].contiguous().DetachFromDisposeScope());
    }

    /// <summary>The prediction for the recorded inputs.</summary>
    public Tensor Predict() => Unet.call(NoisyLatents, Timesteps, EncoderHiddenStates);

    /// <summary>diffusers' loss: the float32 mean squared error of the prediction against the target.</summary>
    public Tensor Loss(Tensor prediction) => AutocastOps.MseLoss(prediction.to(ScalarType.Float32), Target);

    /// <summary>Every parameter's gradient, copied (null where there is none), by name.</summary>
    public Dictionary<string, Tensor?> Gradients() =>
        Unet.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad?.detach().clone());

    /// <summary>Counts calls of the blocks that go through <see cref="UNetBlock.GradientCheckpointingFunc"/> (resnets and transformers).</summary>
    public Func<int> CountBlockCalls()
    {
        int calls = 0;
        foreach (var module in Unet.modules())
            if (module is ResnetBlock2D or Transformer2DModel)
                ((nn.Module<Tensor, Tensor?, Tensor>)module).register_forward_hook((_, _, _, output) =>
                {
                    Interlocked.Increment(ref calls);
                    return output;
                });
        return () => calls;
    }

    public void Dispose()
    {
        Unet.Dispose();
        NoisyLatents.Dispose();
        Timesteps.Dispose();
        EncoderHiddenStates.Dispose();
        Target.Dispose();
    }
}
