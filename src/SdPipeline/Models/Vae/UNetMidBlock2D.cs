using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Vae;

/// <summary>The VAE's bottleneck: resnet, single-head self-attention over the feature map (optional), resnet.</summary>
/// <remarks>Mirrors diffusers.models.unets.unet_2d_blocks.UNetMidBlock2D with <c>num_layers=1</c>, no time embedding.</remarks>
public sealed class UNetMidBlock2D : nn.Module<Tensor, Tensor>
{
    // Declared before resnets: diffusers registers attentions first, and state_dict order follows.
    private readonly ModuleList<Attention> attentions;
    private readonly ModuleList<ResnetBlock2D> resnets;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Channels.</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">GroupNorm epsilon.</param>
    /// <param name="addAttention">Whether the attention is there (<c>mid_block_add_attention</c>).</param>
    /// <param name="device">Where to create the parameters.</param>
    public UNetMidBlock2D(long inChannels, long groups, double eps, bool addAttention, Device? device = null) : base(nameof(UNetMidBlock2D))
    {
        resnets = nn.ModuleList(
            new ResnetBlock2D(inChannels, inChannels, tembChannels: null, groups, eps, device: device),
            new ResnetBlock2D(inChannels, inChannels, tembChannels: null, groups, eps, device: device));
        // diffusers passes attention_head_dim = channels: one head as wide as the feature map.
        attentions = addAttention
            ? nn.ModuleList(new Attention(inChannels, crossAttentionDim: null, heads: 1, dimHead: inChannels, bias: true, upcast: true,
                normNumGroups: groups, eps: eps, residualConnection: true, device: device))
            : nn.ModuleList<Attention>();
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        hiddenStates = resnets[0].call(hiddenStates, null);
        if (attentions.Count > 0) hiddenStates = hiddenStates.Into(h => attentions[0].call(h, null));
        return hiddenStates.Into(h => resnets[1].call(h, null));
    }
}
