using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>Resnets each followed by a spatial transformer over the text embeddings, then a stride-2 downsampler (except in the last block).</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.CrossAttnDownBlock2D.</remarks>
public sealed class CrossAttnDownBlock2D : UNetDownBlock
{
    // Declared before resnets: diffusers registers attentions first, and state_dict order follows.
    private readonly ModuleList<Transformer2DModel> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D> downsamplers;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels in.</param>
    /// <param name="outChannels">Channels out.</param>
    /// <param name="tembChannels">Time embedding width.</param>
    /// <param name="numLayers">Resnet + transformer pairs.</param>
    /// <param name="transformerLayersPerBlock">Transformer blocks per transformer.</param>
    /// <param name="addDownsample">Whether the block halves the resolution.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">Resnet GroupNorm epsilon.</param>
    /// <param name="dropout">Resnet dropout.</param>
    /// <param name="downsamplePadding">Padding of the downsampling convolution.</param>
    /// <param name="crossAttentionDim">Width of the text embeddings.</param>
    /// <param name="numAttentionHeads">Heads (each of <c>outChannels / numAttentionHeads</c> channels).</param>
    /// <param name="useLinearProjection">Linear transformer projections (SD 2.x).</param>
    /// <param name="upcastAttention">Attention in float32 under half precision.</param>
    /// <param name="device">Where to create the parameters.</param>
    public CrossAttnDownBlock2D(long inChannels, long outChannels, long tembChannels, int numLayers, int transformerLayersPerBlock,
        bool addDownsample, long groups, double eps, double dropout, long downsamplePadding, long crossAttentionDim, long numAttentionHeads,
        bool useLinearProjection, bool upcastAttention, Device? device = null) : base(nameof(CrossAttnDownBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels, groups, eps, dropout, device: device))
            .ToArray());
        attentions = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new Transformer2DModel(numAttentionHeads, outChannels / numAttentionHeads, outChannels, transformerLayersPerBlock,
                crossAttentionDim, groups, useLinearProjection, upcastAttention, device))
            .ToArray());
        downsamplers = addDownsample ? nn.ModuleList(new Downsample2D(outChannels, outChannels, downsamplePadding, device)) : nn.ModuleList<Downsample2D>();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override (Tensor HiddenStates, IReadOnlyList<Tensor> Residuals) Forward(Tensor hiddenStates, Tensor temb, Tensor encoderHiddenStates)
    {
        var outputStates = new List<Tensor>(resnets.Count + 1);
        for (int i = 0; i < resnets.Count; i++)
        {
            hiddenStates = RunSubBlock(resnets[i], hiddenStates, temb);
            hiddenStates = RunSubBlock(attentions[i], hiddenStates, encoderHiddenStates);
            outputStates.Add(hiddenStates);
        }
        foreach (var downsampler in downsamplers)
        {
            hiddenStates = downsampler.call(hiddenStates);
            outputStates.Add(hiddenStates);
        }
        return (hiddenStates, outputStates);
    }
}
