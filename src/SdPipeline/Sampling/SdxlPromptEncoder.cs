using SdPipeline.Models.Clip;
using SdPipeline.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>
/// SDXL's prompt encoding: each prompt through both tokenizers (the second pads with <c>!</c>, id 0) and both text
/// encoders; the sequence embedding is both encoders' penultimate hidden state (no final LayerNorm), concatenated
/// on the channels with the first encoder's first; the pooled embedding is the second encoder's projected
/// end-of-text state. Mirrors diffusers' <c>StableDiffusionXLPipeline.encode_prompt</c> with <c>clip_skip=None</c>
/// and <c>prompt_2 = prompt</c>.
/// </summary>
/// <param name="tokenizer">The first tokenizer (<c>tokenizer/</c>).</param>
/// <param name="tokenizer2">The second tokenizer (<c>tokenizer_2/</c>).</param>
/// <param name="textEncoder">CLIP ViT-L (<c>text_encoder/</c>).</param>
/// <param name="textEncoder2">OpenCLIP ViT-bigG with projection (<c>text_encoder_2/</c>).</param>
public sealed class SdxlPromptEncoder(ClipTokenizer tokenizer, ClipTokenizer tokenizer2, ClipTextModel textEncoder, ClipTextModelWithProjection textEncoder2)
{
    /// <summary>The first tokenizer.</summary>
    public ClipTokenizer Tokenizer { get; } = tokenizer;

    /// <summary>The second tokenizer.</summary>
    public ClipTokenizer Tokenizer2 { get; } = tokenizer2;

    /// <summary>The first text encoder.</summary>
    public ClipTextModel TextEncoder { get; } = textEncoder;

    /// <summary>The second text encoder.</summary>
    public ClipTextModelWithProjection TextEncoder2 { get; } = textEncoder2;

    /// <summary>Width of the sequence embedding (the UNet's <c>cross_attention_dim</c>).</summary>
    public int EmbeddingWidth => TextEncoder.Config.HiddenSize + TextEncoder2.Config.HiddenSize;

    /// <summary>Tokenizes and encodes <paramref name="prompts"/> on <paramref name="device"/>.</summary>
    public SdxlPromptEmbeddings Encode(IReadOnlyList<string> prompts, Device device)
    {
        using var ids = Tokenizer.EncodeBatch(prompts);
        using var ids2 = Tokenizer2.EncodeBatch(prompts);
        return EncodeIds(ids.to(device), ids2.to(device));
    }

    /// <summary>Encodes token ids of both tokenizers, [B, 77] each (what the latent cache stores).</summary>
    public SdxlPromptEmbeddings EncodeIds(Tensor inputIds, Tensor inputIds2)
    {
        var (promptEmbeds, pooled) = new SdxlTextEncoders(TextEncoder, TextEncoder2).Encode(inputIds, inputIds2);
        return new SdxlPromptEmbeddings(promptEmbeds, pooled);
    }
}
