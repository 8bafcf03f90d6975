using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>The VAE encoder's block: resnets without time embedding, then an asymmetrically padded stride-2 downsampler (except in the last block).</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.DownEncoderBlock2D.</remarks>
public sealed class DownEncoderBlock2D : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Downsample2D> downsamplers;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels in.</param>
    /// <param name="outChannels">Channels out.</param>
    /// <param name="numLayers">Resnets.</param>
    /// <param name="addDownsample">Whether the block halves the resolution.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">GroupNorm epsilon.</param>
    /// <param name="device">Where to create the parameters.</param>
    public DownEncoderBlock2D(long inChannels, long outChannels, int numLayers, bool addDownsample, long groups, double eps, Device? device = null)
        : base(nameof(DownEncoderBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: null, groups, eps, device: device))
            .ToArray());
        // Padding 0: Downsample2D pads (0, 1, 0, 1) itself, as the original LDM encoder does.
        downsamplers = addDownsample ? nn.ModuleList(new Downsample2D(outChannels, outChannels, padding: 0, device)) : nn.ModuleList<Downsample2D>();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        return hiddenStates.Through([.. resnets.Select(Layer), .. downsamplers.Select(s => (Func<Tensor, Tensor>)s.call)]);
    }

    private static Func<Tensor, Tensor> Layer(ResnetBlock2D resnet) => h => resnet.call(h, null);
}
