using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>Resnets over the hidden states concatenated with the down blocks' skip connections, then a 2× upsampler (except in the last block).</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.UpBlock2D (without FreeU).</remarks>
public sealed class UpBlock2D : UNetUpBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D> upsamplers;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels of the deepest skip connection this block consumes (its last resnet's).</param>
    /// <param name="outChannels">Channels out.</param>
    /// <param name="prevOutputChannel">Channels coming from the previous up block.</param>
    /// <param name="tembChannels">Time embedding width.</param>
    /// <param name="numLayers">Resnets.</param>
    /// <param name="addUpsample">Whether the block doubles the resolution.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">GroupNorm epsilon.</param>
    /// <param name="dropout">Resnet dropout.</param>
    /// <param name="device">Where to create the parameters.</param>
    public UpBlock2D(long inChannels, long outChannels, long prevOutputChannel, long tembChannels, int numLayers, bool addUpsample,
        long groups, double eps, double dropout, Device? device = null) : base(nameof(UpBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(
                (i == 0 ? prevOutputChannel : outChannels) + (i == numLayers - 1 ? inChannels : outChannels),
                outChannels, tembChannels, groups, eps, dropout, device: device))
            .ToArray());
        upsamplers = addUpsample ? nn.ModuleList(new Upsample2D(outChannels, outChannels, device)) : nn.ModuleList<Upsample2D>();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override int ResnetCount => resnets.Count;

    /// <inheritdoc />
    public override Tensor Forward(Tensor hiddenStates, IReadOnlyList<Tensor> residuals, Tensor temb, Tensor encoderHiddenStates, long[]? upsampleSize)
    {
        for (int i = 0; i < resnets.Count; i++)
        {
            int layer = i;
            hiddenStates = JoinSkipConnection(hiddenStates, residuals, layer).Into(h => RunSubBlock(resnets[layer], h, temb));
        }
        foreach (var upsampler in upsamplers) hiddenStates = hiddenStates.Into(h => upsampler.Forward(h, upsampleSize));
        return hiddenStates;
    }
}
