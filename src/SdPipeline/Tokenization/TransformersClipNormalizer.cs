using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace SdPipeline.Tokenization;

/// <summary>
/// The text clean-up of transformers' <c>CLIPTokenizer</c> (v4.x, the slow tokenizer diffusers loads) when ftfy is not
/// installed (<see cref="ClipTextCleaning.Transformers"/>). <c>tokenize()</c> first splits off the special-token literals
/// (case-sensitive: <c>&lt;|startoftext|&gt;</c>, <c>&lt;|endoftext|&gt;</c>); <c>_tokenize</c> then runs each other
/// piece through <c>BasicTokenizer(strip_accents=False, do_split_on_punc=False)</c> and joins its words with spaces:
/// control and format characters (category C*, U+0000, U+FFFD) dropped, tab / newline / CR / Zs to a space, a space
/// around every CJK ideograph, NFC, Python's <c>split()</c>, Python's <c>lower()</c>.
/// </summary>
/// <remarks>
/// Unlike OpenAI's cleaning there is no HTML unescaping: <c>Tom &amp;amp; Jerry</c> is <c>tom &amp; amp ; jerry</c>, as in
/// diffusers. With ftfy installed, transformers runs <c>ftfy.fix_text</c> instead of <c>BasicTokenizer</c>; that mode is
/// not reproduced (see <see cref="OpenAiClipNormalizer"/> on why ftfy's heuristics cannot be ported in part).
/// </remarks>
internal sealed class TransformersClipNormalizer : Normalizer
{
    private static readonly string[] s_specialTokens = [ClipTokenizer.StartOfTextToken, ClipTokenizer.EndOfTextToken];

    /// <summary>The one instance (the clean-up has no settings).</summary>
    public static TransformersClipNormalizer Instance { get; } = new();

    private TransformersClipNormalizer()
    {
    }

    /// <inheritdoc/>
    public override string Normalize(string original) => Clean(original);

    /// <inheritdoc/>
    public override string Normalize(ReadOnlySpan<char> original) => Clean(original.ToString());

    /// <summary>The text CLIP's word split sees for <paramref name="text"/>: words separated by single spaces.</summary>
    public static string Clean(string text)
    {
        // transformers tokenizes each piece between special tokens on its own and concatenates the tokens; joining
        // the cleaned pieces with a space gives the same words, since CLIP's word split never crosses a space.
        var words = new List<string>();
        int start = 0;
        while (start <= text.Length)
        {
            (int at, string? special) = NextSpecialToken(text, start);
            words.AddRange(BasicTokenize(text[start..at]));
            if (special is null) break;
            words.Add(special);
            start = at + special.Length;
        }
        return string.Join(' ', words);
    }

    private static (int At, string? Token) NextSpecialToken(string text, int from)
    {
        (int at, string? token) best = (text.Length, null);
        foreach (string special in s_specialTokens)
        {
            int at = text.IndexOf(special, from, StringComparison.Ordinal);
            if (at >= 0 && at < best.at) best = (at, special);
        }
        return best;
    }

    // BasicTokenizer.tokenize with do_lower_case, no accent stripping, no punctuation split, never_split empty.
    private static IEnumerable<string> BasicTokenize(string text)
    {
        var cleaned = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length;)
        {
            // A lone surrogate is category Cs in Python, so _clean_text drops it like any control character.
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out int length) != System.Buffers.OperationStatus.Done)
            {
                i += Math.Max(length, 1);
                continue;
            }
            i += length;
            // _clean_text
            if (rune.Value is 0 or 0xFFFD || IsControl(rune))
                continue;
            if (IsWhitespace(rune))
            {
                cleaned.Append(' ');
                continue;
            }
            // _tokenize_chinese_chars
            if (IsCjkIdeograph(rune.Value))
                cleaned.Append(' ').Append(rune.ToString()).Append(' ');
            else
                cleaned.Append(rune.ToString());
        }
        // NFC, whitespace_tokenize (str.split()), then lower() word by word (the same as lowering the joined text:
        // a word boundary is white space, which ends the final-sigma context in both).
        string normalized = cleaned.ToString().Normalize(NormalizationForm.FormC);
        return SplitOnPythonSpace(normalized).Select(PythonText.Lower);
    }

    private static IEnumerable<string> SplitOnPythonSpace(string text)
    {
        int start = -1;
        for (int i = 0; i <= text.Length; i++)
        {
            bool space = i == text.Length || PythonText.IsSpace(text[i]);
            if (space && start >= 0)
            {
                yield return text[start..i];
                start = -1;
            }
            else if (!space && start < 0)
                start = i;
        }
    }

    // _is_control: every category C* (Cc, Cf, Cs, Co, Cn) except tab, newline and carriage return.
    private static bool IsControl(Rune rune)
    {
        if (rune.Value is '\t' or '\n' or '\r') return false;
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    // _is_whitespace: space, tab, newline, carriage return and category Zs (not Zl / Zp, not \v or \f: those are Cc).
    private static bool IsWhitespace(Rune rune) =>
        rune.Value is ' ' or '\t' or '\n' or '\r' || Rune.GetUnicodeCategory(rune) == UnicodeCategory.SpaceSeparator;

    // _is_chinese_char: the CJK Unified Ideographs blocks and their compatibility blocks (not kana or hangul).
    private static bool IsCjkIdeograph(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF) or (>= 0x2A700 and <= 0x2B73F)
            or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B820 and <= 0x2CEAF) or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);
}
