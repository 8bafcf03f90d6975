using SdPipeline.Models.Shared;
using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training.Checkpointing;

/// <summary>
/// The autograd function behind <see cref="GradientCheckpointing"/>: forward runs a block without recording a graph
/// and saves only its inputs; backward runs the block again with gradients on, back-propagates through that fresh
/// graph (which accumulates the block's parameter gradients, as PyTorch's reentrant checkpoint does) and returns
/// the inputs' gradients.
/// </summary>
/// <remarks>
/// Arguments of <c>apply</c>: hidden states, condition (or null), an anchor (or null: see
/// <see cref="GradientCheckpointing"/>), and the <see cref="CheckpointedCall"/>. Backward returns one gradient per
/// argument, null for the non-tensors and for inputs that do not require a gradient.
/// </remarks>
internal sealed class CheckpointFunction : autograd.SingleTensorFunction<CheckpointFunction>
{
    private const string CallKey = "call";

    /// <inheritdoc />
    public override string Name => nameof(CheckpointFunction);

    /// <inheritdoc />
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var hiddenStates = (Tensor)vars[0];
        var condition = vars[1] as Tensor;
        var call = (CheckpointedCall)vars[3];
        ctx.save_for_backward([hiddenStates, condition!]);
        ctx.save_data(CallKey, call);
        // apply runs this under no_grad: the block's activations are freed as soon as the caller's dispose scope
        // (GradientCheckpointing.Run's) ends, and only the saved inputs and the output survive.
        return call.Block.call(hiddenStates, condition);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        ReturnedGradients.Release();
        var call = (CheckpointedCall)ctx.get_data(CallKey);
        Tensor? hiddenGrad = null, conditionGrad = null;
        using (torch.NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var hiddenStates = Leaf(saved[0]);
            var condition = saved[1] is null ? null : Leaf(saved[1]);
            Tensor output;
            // libtorch runs backward with gradients off, perhaps on another thread: re-create the forward's state.
            using (torch.enable_grad())
            using (Autocast.Enter(call.Autocast))
                output = call.Recompute(hiddenStates, condition);
            if (output.requires_grad) torch.autograd.backward([output], [gradOutput]);

            if (hiddenStates.requires_grad) hiddenGrad = hiddenStates.grad?.DetachFromDisposeScope();
            if (condition is { requires_grad: true }) conditionGrad = condition.grad?.DetachFromDisposeScope();
        }
        // The block's inputs, saved since the forward, are read by nothing else.
        SavedTensors.Release(ctx);
        // The handle TorchSharp made for this callback; libtorch keeps its own reference.
        gradOutput.Dispose();
        return [ReturnedGradients.Hold(hiddenGrad)!, ReturnedGradients.Hold(conditionGrad)!, null!, null!];
    }

    // A graph leaf with the same data, so that backward stops here and reports the input's gradient in .grad.
    private static Tensor Leaf(Tensor saved) => saved.detach().requires_grad_(saved.requires_grad);
}
