using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>The VAE encoder: image [B, 3, H, W] → mean and log-variance [B, 2·latent, H/f, W/f] (before <c>quant_conv</c>).</summary>
/// <remarks>Mirrors diffusers.models.autoencoders.vae.Encoder with <c>double_z=True</c>.</remarks>
public sealed class Encoder : nn.Module<Tensor, Tensor>
{
    // Every VAE GroupNorm uses 1e-6 (diffusers hard-codes it).
    internal const double NormEps = 1e-6;

    private readonly nn.Module<Tensor, Tensor> conv_in;
    private readonly ModuleList<DownEncoderBlock2D> down_blocks;
    private readonly UNetMidBlock2D mid_block;
    private readonly nn.Module<Tensor, Tensor> conv_norm_out;
    private readonly nn.Module<Tensor, Tensor> conv_out;

    /// <summary>Creates the encoder.</summary>
    /// <param name="config">The VAE architecture.</param>
    /// <param name="device">Where to create the parameters.</param>
    public Encoder(AutoencoderKLConfig config, Device? device = null) : base(nameof(Encoder))
    {
        var boc = config.BlockOutChannels;
        conv_in = nn.Conv2d(config.InChannels, boc[0], kernel_size: 3, stride: 1, padding: 1, device: device);

        var blocks = new DownEncoderBlock2D[boc.Count];
        int outputChannel = boc[0];
        for (int i = 0; i < boc.Count; i++)
        {
            int inputChannel = outputChannel;
            outputChannel = boc[i];
            blocks[i] = new DownEncoderBlock2D(inputChannel, outputChannel, config.LayersPerBlock, addDownsample: i < boc.Count - 1,
                config.NormNumGroups, NormEps, device);
        }
        down_blocks = nn.ModuleList(blocks);

        mid_block = new UNetMidBlock2D(boc[^1], config.NormNumGroups, NormEps, config.MidBlockAddAttention, device);
        conv_norm_out = Norms.GroupNorm(config.NormNumGroups, boc[^1], NormEps, device);
        conv_out = nn.Conv2d(boc[^1], 2 * config.LatentChannels, kernel_size: 3, stride: 1, padding: 1, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor sample)
    {
        bool inference = this.InInference();
        return sample.Through([conv_in.call, .. down_blocks.Select(b => (Func<Tensor, Tensor>)b.call), mid_block.call,
            h => Norms.Apply(conv_norm_out, h, inference, silu: true), conv_out.call]);
    }
}
