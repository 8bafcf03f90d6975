using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>The VAE decoder's block: resnets without time embedding, then a 2× upsampler (except in the last block).</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.UpDecoderBlock2D.</remarks>
public sealed class UpDecoderBlock2D : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock2D> resnets;
    private readonly ModuleList<Upsample2D> upsamplers;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels in.</param>
    /// <param name="outChannels">Channels out.</param>
    /// <param name="numLayers">Resnets.</param>
    /// <param name="addUpsample">Whether the block doubles the resolution.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">GroupNorm epsilon.</param>
    /// <param name="device">Where to create the parameters.</param>
    public UpDecoderBlock2D(long inChannels, long outChannels, int numLayers, bool addUpsample, long groups, double eps, Device? device = null)
        : base(nameof(UpDecoderBlock2D))
    {
        resnets = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, tembChannels: null, groups, eps, device: device))
            .ToArray());
        upsamplers = addUpsample ? nn.ModuleList(new Upsample2D(outChannels, outChannels, device)) : nn.ModuleList<Upsample2D>();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        return hiddenStates.Through([.. resnets.Select(Layer), .. upsamplers.Select(s => (Func<Tensor, Tensor>)s.call)]);
    }

    private static Func<Tensor, Tensor> Layer(ResnetBlock2D resnet) => h => resnet.call(h, null);
}
