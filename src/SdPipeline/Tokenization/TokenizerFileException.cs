using SdPipeline.Errors;

namespace SdPipeline.Tokenization;

/// <summary>
/// A tokenizer file (<c>vocab.json</c>, <c>merges.txt</c>, <c>tokenizer_config.json</c>, <c>special_tokens_map.json</c>)
/// that cannot be read as a CLIP tokenizer: truncated, corrupt, or not matching its partner file. The message names the
/// file and the fix; the model folder is the data at fault, so the CLI exits with 1.
/// </summary>
public sealed class TokenizerFileException(string message, Exception? inner = null) : ActionableException(ErrorKind.Data, message, inner)
{
    /// <summary>The fix for a damaged file, which every message of this type ends with.</summary>
    internal const string Fix = "the tokenizer files are damaged or do not belong together: copy the model's tokenizer folder again from its source";
}
