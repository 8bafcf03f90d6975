namespace SdPipeline.Tokenization;

/// <summary>
/// Which CLIP tokenizer's text clean-up runs before the byte-pair encoding. The vocabulary, the word split, the
/// merges and the wrapping to 77 ids are the same in both; only the clean-up differs, so a prompt with HTML entities,
/// control characters or CJK ideographs gets different ids.
/// </summary>
public enum ClipTextCleaning
{
    /// <summary>
    /// transformers' <c>CLIPTokenizer</c>, the one diffusers' Stable Diffusion pipelines and training scripts load,
    /// as a plain install runs it (ftfy is only an extra, so it is absent): special-token literals split off, then
    /// BERT's <c>BasicTokenizer</c> (control and format characters dropped, CJK ideographs spaced, NFC, lower case),
    /// no HTML unescaping. See <see cref="TransformersClipNormalizer"/>.
    /// </summary>
    Transformers,

    /// <summary>
    /// OpenAI's <c>simple_tokenizer.py</c> (the CLIP repository's own), without ftfy: HTML unescaped twice, white space
    /// folded, lower case. See <see cref="OpenAiClipNormalizer"/>.
    /// </summary>
    OpenAi,
}
