using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>Resnets, then a stride-2 downsampler (except in the last block).</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.DownBlock2D.</remarks>
public sealed class DownBlock2D : UNetDownBlock
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D> downsamplers;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels in.</param>
    /// <param name="outChannels">Channels out.</param>
    /// <param name="tembChannels">Time embedding width.</param>
    /// <param name="numLayers">Resnets.</param>
    /// <param name="addDownsample">Whether the block halves the resolution.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">GroupNorm epsilon.</param>
    /// <param name="dropout">Resnet dropout.</param>
    /// <param name="downsamplePadding">Padding of the downsampling convolution.</param>
    /// <param name="device">Where to create the parameters.</param>
    public DownBlock2D(long inChannels, long outChannels, long tembChannels, int numLayers, bool addDownsample, long groups, double eps,
        double dropout, long downsamplePadding, Device? device = null) : base(nameof(DownBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels, groups, eps, dropout, device: device))
            .ToArray());
        downsamplers = addDownsample ? nn.ModuleList(new Downsample2D(outChannels, outChannels, downsamplePadding, device)) : nn.ModuleList<Downsample2D>();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override (Tensor HiddenStates, IReadOnlyList<Tensor> Residuals) Forward(Tensor hiddenStates, Tensor temb, Tensor encoderHiddenStates)
    {
        var outputStates = new List<Tensor>(resnets.Count + 1);
        foreach (var resnet in resnets)
        {
            hiddenStates = RunSubBlock(resnet, hiddenStates, temb);
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
