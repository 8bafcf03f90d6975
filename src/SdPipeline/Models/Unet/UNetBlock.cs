using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// What the UNet's down, mid and up blocks share: calling their resnets and transformers either directly or, when
/// training has set <see cref="GradientCheckpointingFunc"/>, through it — the <c>if self.gradient_checkpointing</c>
/// branch of diffusers' blocks. The function itself decides what to do without gradients (the checkpointing one
/// calls the block directly then), so a hook that only observes the blocks sees inference too.
/// </summary>
public abstract class UNetBlock : nn.Module
{
    /// <summary>Names the module.</summary>
    protected UNetBlock(string name) : base(name) { }

    /// <summary>The checkpointing function the block's resnets and transformers run through; null runs them directly.</summary>
    public GradientCheckpointingFunction? GradientCheckpointingFunc { get; set; }

    /// <summary>Runs <paramref name="block"/> on <paramref name="hiddenStates"/> and <paramref name="condition"/>.</summary>
    protected Tensor RunSubBlock(nn.Module<Tensor, Tensor?, Tensor> block, Tensor hiddenStates, Tensor? condition) =>
        GradientCheckpointingFunc is { } checkpoint ? checkpoint(block, hiddenStates, condition) : block.call(hiddenStates, condition);
}
