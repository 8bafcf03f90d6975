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

    /// <summary>Runs the block, consuming its inputs: <paramref name="hiddenStates"/> and each of <paramref name="residuals"/> are disposed as soon as they are read.</summary>
    /// <remarks>
    /// Consumed rather than left to the caller, so that the incoming feature map (42 MB for SD 1.5's last block at
    /// 512 px, batch 2) is not alive through the whole block, where the UNet's inference peaks.
    /// </remarks>
    /// <param name="hiddenStates">Feature map [B, C, H, W]; disposed by the block.</param>
    /// <param name="residuals">The down blocks' skip connections for this block, oldest first; consumed from the end, each disposed by the block.</param>
    /// <param name="temb">Time embedding [B, T].</param>
    /// <param name="encoderHiddenStates">Text embeddings [B, M, D] (unused by blocks without attention).</param>
    /// <param name="upsampleSize">Output size [H, W] of the upsampler when the input size is not a multiple of the UNet's factor, else null.</param>
    public abstract Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> residuals, Tensor temb, Tensor encoderHiddenStates, long[]? upsampleSize);

    /// <summary>
    /// The feature map joined (along channels) with the skip connection of resnet <paramref name="layer"/>, both inputs
    /// disposed: the consumption <see cref="Forward"/> promises.
    /// </summary>
    protected static Tensor JoinSkipConnection(Tensor hiddenStates, IReadOnlyList<Tensor> residuals, int layer)
    {
        var residual = residuals[residuals.Count - 1 - layer];
        var joined = torch.cat([hiddenStates, residual], dim: 1);
        hiddenStates.Dispose(); // see Intermediates
        residual.Dispose();
        return joined;
    }
}
