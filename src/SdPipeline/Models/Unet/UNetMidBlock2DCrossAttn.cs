using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>The UNet's bottleneck: resnet, spatial transformer, resnet.</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.UNetMidBlock2DCrossAttn with <c>num_layers=1</c>.</remarks>
public sealed class UNetMidBlock2DCrossAttn : UNetBlock
{
    // Declared before resnets: diffusers registers attentions first, and state_dict order follows.
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels.</param>
    /// <param name="tembChannels">Time embedding width.</param>
    /// <param name="transformerLayersPerBlock">Transformer blocks in the transformer.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">Resnet GroupNorm epsilon.</param>
    /// <param name="dropout">Resnet dropout.</param>
    /// <param name="outputScaleFactor">Resnet output scale (<c>mid_block_scale_factor</c>).</param>
    /// <param name="crossAttentionDim">Width of the text embeddings.</param>
    /// <param name="numAttentionHeads">Heads (each of <c>inChannels / numAttentionHeads</c> channels).</param>
    /// <param name="useLinearProjection">Linear transformer projections (SD 2.x).</param>
    /// <param name="upcastAttention">Attention in float32 under half precision.</param>
    /// <param name="device">Where to create the parameters.</param>
    public UNetMidBlock2DCrossAttn(long inChannels, long tembChannels, int transformerLayersPerBlock, long groups, double eps, double dropout,
        double outputScaleFactor, long crossAttentionDim, long numAttentionHeads, bool useLinearProjection, bool upcastAttention,
        Device? device = null) : base(nameof(UNetMidBlock2DCrossAttn))
    {
        resnets = nn.ModuleList(
            new ResnetBlock2D(inChannels, inChannels, tembChannels, groups, eps, dropout, outputScaleFactor, device),
            new ResnetBlock2D(inChannels, inChannels, tembChannels, groups, eps, dropout, outputScaleFactor, device));
        attentions = nn.ModuleList(new Transformer2DModel(numAttentionHeads, inChannels / numAttentionHeads, inChannels, transformerLayersPerBlock,
            crossAttentionDim, groups, useLinearProjection, upcastAttention, device));
        RegisterComponents();
    }

    /// <summary>Runs resnet → transformer → resnet.</summary>
    public Tensor Forward(Tensor hiddenStates, Tensor temb, Tensor encoderHiddenStates)
    {
        hiddenStates = RunSubBlock(resnets[0], hiddenStates, temb);
        for (int i = 0; i < attentions.Count; i++)
        {
            int layer = i;
            hiddenStates = hiddenStates.Into(h => RunSubBlock(attentions[layer], h, encoderHiddenStates)).Into(h => RunSubBlock(resnets[layer + 1], h, temb));
        }
        return hiddenStates;
    }
}
