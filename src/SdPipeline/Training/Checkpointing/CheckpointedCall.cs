using static TorchSharp.torch;

namespace SdPipeline.Training.Checkpointing;

/// <summary>What backward needs to run a checkpointed block again exactly as its forward ran.</summary>
/// <param name="Block">The block.</param>
/// <param name="Autocast">The autocast dtype of the forward (null: off), re-entered for the recompute.</param>
internal sealed record CheckpointedCall(nn.Module<Tensor, Tensor?, Tensor> Block, ScalarType? Autocast)
{
    /// <summary>The block's forward with gradients recorded.</summary>
    public Tensor Recompute(Tensor hiddenStates, Tensor? condition) => Block.call(hiddenStates, condition);
}
