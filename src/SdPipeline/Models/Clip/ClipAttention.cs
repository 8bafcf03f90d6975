using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>Causal multi-head self-attention. Mirrors transformers' <c>CLIPAttention</c>.</summary>
internal sealed class ClipAttention : nn.Module<Tensor, Tensor>
{
    // Declared in transformers' order (k, v, q, out) so state_dict() lists the keys as it does.
    private readonly nn.Module<Tensor, Tensor> k_proj;
    private readonly nn.Module<Tensor, Tensor> v_proj;
    private readonly nn.Module<Tensor, Tensor> q_proj;
    private readonly nn.Module<Tensor, Tensor> out_proj;
    private readonly long _heads;

    /// <summary>Number of heads.</summary>
    public long Heads => _heads;

    public ClipAttention(ClipTextConfig config, Device? device) : base(nameof(ClipAttention))
    {
        k_proj = nn.Linear(config.HiddenSize, config.HiddenSize, device: device);
        v_proj = nn.Linear(config.HiddenSize, config.HiddenSize, device: device);
        q_proj = nn.Linear(config.HiddenSize, config.HiddenSize, device: device);
        out_proj = nn.Linear(config.HiddenSize, config.HiddenSize, device: device);
        _heads = config.NumAttentionHeads;
        RegisterComponents();
    }

    /// <summary>[B, T, C] → [B, T, C]; each token attends to itself and the tokens before it.</summary>
    public override Tensor forward(Tensor hiddenStates)
    {
        long batch = hiddenStates.shape[0], tokens = hiddenStates.shape[1], channels = hiddenStates.shape[2];
        using var q = SplitHeads(q_proj.call(hiddenStates), batch, tokens); // (B, nh, T, hs)
        using var k = SplitHeads(k_proj.call(hiddenStates), batch, tokens);
        using var v = SplitHeads(v_proj.call(hiddenStates), batch, tokens);
        // CLIP's text transformer is causal; SD passes no padding mask, so padding tokens are attended to.
        // SDPA scales by 1/sqrt(head_dim), as CLIPAttention does.
        using var attended = nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        using var merged = attended.transpose(1, 2).reshape(batch, tokens, channels); // (B, T, C)
        return out_proj.call(merged);
    }

    private Tensor SplitHeads(Tensor projected, long batch, long tokens)
    {
        using (projected)
            return projected.view(batch, tokens, _heads, -1).transpose(1, 2);
    }
}
