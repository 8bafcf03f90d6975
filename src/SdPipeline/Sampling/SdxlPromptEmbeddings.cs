using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>SDXL's text conditioning of a batch of prompts.</summary>
/// <param name="PromptEmbeds">
/// [B, 77, D₁ + D₂]: the penultimate hidden states of both text encoders, the first encoder's channels first (2048 in SDXL).
/// </param>
/// <param name="PooledPromptEmbeds">[B, projection_dim]: the second encoder's projected pooled embedding (the UNet's <c>text_embeds</c>).</param>
public sealed record SdxlPromptEmbeddings(Tensor PromptEmbeds, Tensor PooledPromptEmbeds)
{
    /// <summary>The zero embeddings <c>force_zeros_for_empty_prompt</c> gives an absent negative prompt.</summary>
    public SdxlPromptEmbeddings ZerosLike() => new(zeros_like(PromptEmbeds), zeros_like(PooledPromptEmbeds));

    /// <summary>The batch of <paramref name="first"/> followed by <paramref name="second"/>'s (CFG: unconditional first).</summary>
    public static SdxlPromptEmbeddings Concat(SdxlPromptEmbeddings first, SdxlPromptEmbeddings second) =>
        new(cat([first.PromptEmbeds, second.PromptEmbeds]), cat([first.PooledPromptEmbeds, second.PooledPromptEmbeds]));
}
