using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>A UNet up block (<see cref="UpBlock2D"/> or <see cref="CrossAttnUpBlock2D"/>).</summary>
public abstract class UNetUpBlock : UNetBlock
{
    /// <summary>Names the module.</summary>
    protected UNetUpBlock(string name) : base(name) { }

    /// <summary>How many skip connections the block consumes (one per resnet).</summary>
    public abstract int ResnetCount { get; }

    /// <summary>Runs the block.</summary>
    /// <param name="hiddenStates">Feature map [B, C, H, W].</param>
    /// <param name="residuals">The down blocks' skip connections for this block, oldest first; consumed from the end.</param>
    /// <param name="temb">Time embedding [B, T].</param>
    /// <param name="encoderHiddenStates">Text embeddings [B, M, D] (unused by blocks without attention).</param>
    /// <param name="upsampleSize">Output size [H, W] of the upsampler when the input size is not a multiple of the UNet's factor, else null.</param>
    public abstract Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> residuals, Tensor temb, Tensor encoderHiddenStates, long[]? upsampleSize);
}
