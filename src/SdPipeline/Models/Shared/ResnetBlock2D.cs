using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Two GroupNorm → SiLU → 3×3 conv stages with the (optional) time embedding added in between, plus a 1×1
/// shortcut when the channel count changes. Its forward is a pure function of (hidden states, time embedding),
/// so training can recompute it in backward (gradient checkpointing).
/// </summary>
/// <remarks>Mirrors diffusers.models.resnet.ResnetBlock2D with <c>time_embedding_norm="default"</c>, <c>pre_norm</c>, SiLU.</remarks>
public sealed class ResnetBlock2D : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> norm1;
    private readonly nn.Module<Tensor, Tensor> conv1;
    private readonly nn.Module<Tensor, Tensor>? time_emb_proj;
    private readonly nn.Module<Tensor, Tensor> norm2;
    private readonly nn.Module<Tensor, Tensor> conv2;
    private readonly nn.Module<Tensor, Tensor>? conv_shortcut;

    private readonly double _dropout;
    private readonly double _outputScaleFactor;

    /// <summary>Creates the block.</summary>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="tembChannels">Time embedding width, or null for a block without one (VAE).</param>
    /// <param name="groups">GroupNorm groups.</param>
    /// <param name="eps">GroupNorm epsilon (UNet: <c>norm_eps</c>; VAE: 1e-6).</param>
    /// <param name="dropout">Dropout before <c>conv2</c> (training only).</param>
    /// <param name="outputScaleFactor">The sum with the shortcut is divided by it.</param>
    /// <param name="device">Where to create the parameters (<c>meta</c> builds the shapes without memory).</param>
    public ResnetBlock2D(long inChannels, long outChannels, long? tembChannels, long groups, double eps,
        double dropout = 0.0, double outputScaleFactor = 1.0, Device? device = null) : base(nameof(ResnetBlock2D))
    {
        norm1 = Norms.GroupNorm(groups, inChannels, eps, device);
        conv1 = nn.Conv2d(inChannels, outChannels, 3, stride: 1, padding: 1, device: device);
        if (tembChannels is long temb) time_emb_proj = nn.Linear(temb, outChannels, device: device);
        norm2 = Norms.GroupNorm(groups, outChannels, eps, device);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, stride: 1, padding: 1, device: device);
        if (inChannels != outChannels) conv_shortcut = nn.Conv2d(inChannels, outChannels, kernel_size: 1, stride: 1, padding: 0L, device: device);
        _dropout = dropout;
        _outputScaleFactor = outputScaleFactor;
        RegisterComponents();
    }

    /// <summary>The block applied to <paramref name="inputTensor"/> [B, C, H, W] with time embedding <paramref name="temb"/> [B, T].</summary>
    public override Tensor forward(Tensor inputTensor, Tensor? temb)
    {
        // The block scope frees what Into cannot (the time projection); Into frees the rest as it goes (see Intermediates).
        using var scope = NewDisposeScope();
        bool inference = this.InInference();
        var hiddenStates = Norms.Apply(norm1, inputTensor, inference, silu: true).Into(h => Convolutions.Apply(conv1, h, inference));

        if (time_emb_proj is not null)
        {
            if (temb is null) throw new ArgumentNullException(nameof(temb), "this resnet block was built with a time embedding");
            var projected = time_emb_proj.call(nn.functional.silu(temb)).unsqueeze(-1).unsqueeze(-1);
            hiddenStates = hiddenStates.Into(h => h + projected);
        }

        hiddenStates = hiddenStates.Into(h => Norms.Apply(norm2, h, inference, silu: true));
        if (_dropout > 0 && training) hiddenStates = hiddenStates.Into(h => nn.functional.dropout(h, _dropout, training: true));
        hiddenStates = hiddenStates.Into(h => Convolutions.Apply(conv2, h, inference));

        var shortcut = conv_shortcut is null ? inputTensor : conv_shortcut.call(inputTensor);
        var output = hiddenStates.Into(h => shortcut + h);
        return scope.MoveToOuter(_outputScaleFactor == 1.0 ? output : output.Into(o => o / _outputScaleFactor));
    }
}
