using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace SdPipeline.Tokenization;

/// <summary>
/// OpenAI CLIP's text cleaning (<c>simple_tokenizer.py</c>; <see cref="ClipTextCleaning.OpenAi"/>): <c>basic_clean</c> (html.unescape twice, strip),
/// <c>whitespace_clean</c> (every <c>\s+</c> run to one space, strip), then <c>lower()</c>, each with Python's
/// semantics rather than .NET's where they differ (which characters <c>strip()</c> removes, <c>İ</c> and the final
/// sigma in <c>lower()</c>, the HTML5 entity list).
/// </summary>
/// <remarks>
/// <para>
/// No ftfy. The reference runs <c>ftfy.fix_text</c> first; it changes 9 of the 300 fixture prompts (NFC of
/// combining accents, full-width letters, ligatures, curly quotes, mojibake). Its mojibake repair is a heuristic
/// (a hand-tuned "badness" score, sloppy code pages, restoring lost 0xA0 bytes: "â€ " becomes "†") that cannot be
/// reproduced in part without producing text neither the reference nor the ftfy-less tokenizer would, so this
/// cleaning matches the reference tokenizer run without ftfy (the fixtures' <c>ids_without_ftfy</c>), which is
/// also what diffusers does where ftfy is not installed. Only inputs with those characters are affected.
/// </para>
/// </remarks>
internal sealed partial class OpenAiClipNormalizer : Normalizer
{
    /// <summary>The one instance (the cleaning has no settings).</summary>
    public static OpenAiClipNormalizer Instance { get; } = new();

    private OpenAiClipNormalizer()
    {
    }

    // `regex`'s \s is Unicode White_Space, the same set as .NET's \s ([\f\n\r\t\v\x85\p{Z}]).
    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Whitespace();

    /// <inheritdoc/>
    public override string Normalize(string original) => Clean(original);

    /// <inheritdoc/>
    public override string Normalize(ReadOnlySpan<char> original) => Clean(original.ToString());

    /// <summary>The text CLIP's byte-pair encoder sees for <paramref name="text"/>.</summary>
    public static string Clean(string text)
    {
        // basic_clean (minus ftfy, see the remarks)
        text = PythonText.Strip(PythonHtml.Unescape(PythonHtml.Unescape(text)));
        // whitespace_clean
        text = PythonText.Strip(Whitespace().Replace(text, " "));
        return PythonText.Lower(text);
    }
}
