using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>Pre-LayerNorm self-attention, cross-attention over the text embeddings, and a GEGLU MLP, each residual.</summary>
/// <remarks>Mirrors diffusers.models.attention.BasicTransformerBlock with <c>norm_type="layer_norm"</c>, no attention bias.</remarks>
public sealed class BasicTransformerBlock : nn.Module<Tensor, Tensor?, Tensor>
{
    private const double LayerNormEps = 1e-5;

    private readonly nn.Module<Tensor, Tensor> norm1;
    private readonly Attention attn1;
    private readonly nn.Module<Tensor, Tensor> norm2;
    private readonly Attention attn2;
    private readonly nn.Module<Tensor, Tensor> norm3;
    private readonly FeedForward ff;

    /// <summary>Creates the block.</summary>
    /// <param name="dim">Token width (heads × head width).</param>
    /// <param name="numAttentionHeads">Heads.</param>
    /// <param name="attentionHeadDim">Width of one head.</param>
    /// <param name="crossAttentionDim">Width of the text embeddings.</param>
    /// <param name="upcastAttention">Attention in float32 under half precision.</param>
    /// <param name="device">Where to create the parameters.</param>
    public BasicTransformerBlock(long dim, long numAttentionHeads, long attentionHeadDim, long crossAttentionDim, bool upcastAttention,
        Device? device = null) : base(nameof(BasicTransformerBlock))
    {
        norm1 = nn.LayerNorm(dim, LayerNormEps, device: device);
        attn1 = new Attention(dim, crossAttentionDim: null, numAttentionHeads, attentionHeadDim, bias: false, upcastAttention, device: device);
        norm2 = nn.LayerNorm(dim, LayerNormEps, device: device);
        attn2 = new Attention(dim, crossAttentionDim, numAttentionHeads, attentionHeadDim, bias: false, upcastAttention, device: device);
        norm3 = nn.LayerNorm(dim, LayerNormEps, device: device);
        ff = new FeedForward(dim, device);
        RegisterComponents();
    }

    /// <summary>Transforms tokens [B, N, dim]; <paramref name="encoderHiddenStates"/> [B, M, D] (null: attn2 attends to the tokens themselves).</summary>
    public override Tensor forward(Tensor hiddenStates, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope(); // frees the intermediates on return (docs/performance.md, memory)
        hiddenStates = attn1.call(norm1.call(hiddenStates), null) + hiddenStates;
        scope.DisposeEverythingBut(hiddenStates); // the norm's and attention's outputs, as soon as the sum holds them
        hiddenStates = attn2.call(norm2.call(hiddenStates), encoderHiddenStates) + hiddenStates;
        scope.DisposeEverythingBut(hiddenStates);
        return scope.MoveToOuter(ff.call(norm3.call(hiddenStates)) + hiddenStates);
    }
}
