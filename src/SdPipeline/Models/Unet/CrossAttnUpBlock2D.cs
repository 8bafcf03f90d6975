using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// Resnets over the hidden states concatenated with the down blocks' skip connections, each followed by a spatial
/// transformer over the text embeddings, then a 2× upsampler (except in the last block).
/// </summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.CrossAttnUpBlock2D (without FreeU).</remarks>
public sealed class CrossAttnUpBlock2D : UNetUpBlock
{
    // Declared before resnets: diffusers registers attentions first, and state_dict order follows.
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D> upsamplers;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels of the deepest skip connection this block consumes (its last resnet's).</param>
    /// <param name="outChannels">Channels out.</param>
    /// <param name="prevOutputChannel">Channels coming from the previous up block.</param>
    /// <param name="tembChannels">Time embedding width.</param>
    /// <param name="numLayers">Resnet + transformer pairs.</param>
    /// <param name="transformerLayersPerBlock">Transformer blocks per transformer.</param>
    /// <param name="addUpsample">Whether the block doubles the resolution.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">Resnet GroupNorm epsilon.</param>
    /// <param name="dropout">Resnet dropout.</param>
    /// <param name="crossAttentionDim">Width of the text embeddings.</param>
    /// <param name="numAttentionHeads">Heads (each of <c>outChannels / numAttentionHeads</c> channels).</param>
    /// <param name="useLinearProjection">Linear transformer projections (SD 2.x).</param>
    /// <param name="upcastAttention">Attention in float32 under half precision.</param>
    /// <param name="device">Where to create the parameters.</param>
    public CrossAttnUpBlock2D(long inChannels, long outChannels, long prevOutputChannel, long tembChannels, int numLayers,
        int transformerLayersPerBlock, bool addUpsample, long groups, double eps, double dropout, long crossAttentionDim,
        long numAttentionHeads, bool useLinearProjection, bool upcastAttention, Device? device = null) : base(nameof(CrossAttnUpBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(
                (i == 0 ? prevOutputChannel : outChannels) + (i == numLayers - 1 ? inChannels : outChannels),
                outChannels, tembChannels, groups, eps, dropout, device: device))
            .ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new Transformer2DModel(numAttentionHeads, outChannels / numAttentionHeads, outChannels, transformerLayersPerBlock,
                crossAttentionDim, groups, useLinearProjection, upcastAttention, device))
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
            hiddenStates = JoinSkipConnection(hiddenStates, residuals, layer).Into(h => RunSubBlock(resnets[layer], h, temb)).Into(h => RunSubBlock(attentions[layer], h, encoderHiddenStates));
        }
        foreach (var upsampler in upsamplers) hiddenStates = hiddenStates.Into(h => upsampler.Forward(h, upsampleSize));
        return hiddenStates;
    }
}
