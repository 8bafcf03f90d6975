using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>A UNet down block (<see cref="DownBlock2D"/> or <see cref="CrossAttnDownBlock2D"/>).</summary>
public abstract class UNetDownBlock : UNetBlock
{
    /// <summary>Names the module.</summary>
    protected UNetDownBlock(string name) : base(name) { }

    /// <summary>
    /// Runs the block. Returns the hidden states leaving it and the skip connections it produced for the up
    /// blocks: one per resnet, plus the downsampled output when the block downsamples.
    /// </summary>
    /// <param name="hiddenStates">Feature map [B, C, H, W].</param>
    /// <param name="temb">Time embedding [B, T].</param>
    /// <param name="encoderHiddenStates">Text embeddings [B, M, D] (unused by blocks without attention).</param>
    public abstract (Tensor HiddenStates, IReadOnlyList<Tensor> Residuals) Forward(Tensor hiddenStates, Tensor temb, Tensor encoderHiddenStates);
}
