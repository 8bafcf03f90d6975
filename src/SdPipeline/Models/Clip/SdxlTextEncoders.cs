using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>
/// SDXL's two text encoders read together, as diffusers' <c>encode_prompt</c> reads them (<c>clip_skip=None</c>): both
/// encoders' penultimate hidden states (no final LayerNorm), concatenated on the channels with the first encoder's
/// first (768 + 1280 = 2048 in SDXL), and the second encoder's projected end-of-text embedding (the UNet's
/// <c>text_embeds</c>). The latent cache, the training step and the pipeline all encode through this one place.
/// </summary>
/// <param name="TextEncoder">CLIP ViT-L (<c>text_encoder/</c>).</param>
/// <param name="TextEncoder2">OpenCLIP ViT-bigG with its projection (<c>text_encoder_2/</c>).</param>
public sealed record SdxlTextEncoders(ClipTextModel TextEncoder, ClipTextModelWithProjection TextEncoder2)
{
    /// <summary>Width of the sequence embedding (the UNet's <c>cross_attention_dim</c>).</summary>
    public int EmbeddingWidth => TextEncoder.Config.HiddenSize + TextEncoder2.Config.HiddenSize;

    /// <summary>
    /// The sequence embedding [B, 77, D₁ + D₂] and the pooled embedding [B, projection_dim] of token ids of the first
    /// tokenizer (<paramref name="inputIds"/>) and the second (<paramref name="inputIds2"/>, padded with <c>!</c>).
    /// Gradients flow when the encoders train (LoRA on the text encoders).
    /// </summary>
    public (Tensor PromptEmbeds, Tensor PooledPromptEmbeds) Encode(Tensor inputIds, Tensor inputIds2)
    {
        using var scope = NewDisposeScope();
        var first = TextEncoder.HiddenState(inputIds, TextEncoder.Config.NumHiddenLayers - 1);
        var (second, pooled) = TextEncoder2.Encode(inputIds2, TextEncoder2.LayerCount - 1);
        var promptEmbeds = cat([first, second], dim: -1);
        return (promptEmbeds.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }
}
