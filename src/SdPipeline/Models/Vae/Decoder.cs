using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>The VAE decoder: latents [B, latent, h, w] (after <c>post_quant_conv</c>) → image [B, 3, h·f, w·f].</summary>
/// <remarks>Mirrors diffusers.models.autoencoders.vae.Decoder with <c>norm_type="group"</c>.</remarks>
public sealed class Decoder : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv_in;
    private readonly ModuleList<UpDecoderBlock2D> up_blocks;
    private readonly UNetMidBlock2D mid_block;
    private readonly nn.Module<Tensor, Tensor> conv_norm_out;
    private readonly nn.Module<Tensor, Tensor> conv_out;

    /// <summary>Creates the decoder.</summary>
    /// <param name="config">The VAE architecture.</param>
    /// <param name="device">Where to create the parameters.</param>
    public Decoder(AutoencoderKLConfig config, Device? device = null) : base(nameof(Decoder))
    {
        var boc = config.BlockOutChannels;
        conv_in = nn.Conv2d(config.LatentChannels, boc[^1], kernel_size: 3, stride: 1, padding: 1, device: device);
        mid_block = new UNetMidBlock2D(boc[^1], config.NormNumGroups, Encoder.NormEps, config.MidBlockAddAttention, device);

        var blocks = new UpDecoderBlock2D[boc.Count];
        int outputChannel = boc[^1];
        for (int i = 0; i < boc.Count; i++)
        {
            int prevOutputChannel = outputChannel;
            outputChannel = boc[boc.Count - 1 - i];
            blocks[i] = new UpDecoderBlock2D(prevOutputChannel, outputChannel, config.LayersPerBlock + 1, addUpsample: i < boc.Count - 1,
                config.NormNumGroups, Encoder.NormEps, device);
        }
        up_blocks = nn.ModuleList(blocks);

        conv_norm_out = Norms.GroupNorm(config.NormNumGroups, boc[0], Encoder.NormEps, device);
        conv_out = nn.Conv2d(boc[0], config.OutChannels, kernel_size: 3, stride: 1, padding: 1, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor sample)
    {
        bool inference = this.InInference();
        return sample.Through([conv_in.call, mid_block.call, .. up_blocks.Select(b => (Func<Tensor, Tensor>)b.call),
            h => Norms.Apply(conv_norm_out, h, inference, silu: true), conv_out.call]);
    }
}
