using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>A pre-LayerNorm transformer block. Mirrors transformers' <c>CLIPEncoderLayer</c>.</summary>
internal sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly ClipAttention self_attn;
    private readonly nn.Module<Tensor, Tensor> layer_norm1;
    private readonly ClipMlp mlp;
    private readonly nn.Module<Tensor, Tensor> layer_norm2;

    public ClipEncoderLayer(ClipTextConfig config, Device? device) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(config, device);
        layer_norm1 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        mlp = new ClipMlp(config, device);
        layer_norm2 = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    /// <summary>x + attn(ln1(x)), then + mlp(ln2(·)).</summary>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var normed1 = layer_norm1.call(hiddenStates);
        using var attended = self_attn.call(normed1);
        using var afterAttention = hiddenStates + attended;
        using var normed2 = layer_norm2.call(afterAttention);
        using var mlpOut = mlp.call(normed2);
        return afterAttention + mlpOut;
    }
}
