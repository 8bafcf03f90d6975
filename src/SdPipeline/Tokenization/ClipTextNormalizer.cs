using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace SdPipeline.Tokenization;

/// <summary>
/// CLIP's text cleaning (OpenAI <c>simple_tokenizer.py</c>): <c>basic_clean</c> (html.unescape twice, strip),
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
internal sealed partial class ClipTextNormalizer : Normalizer
{
    /// <summary>The one instance (the cleaning has no settings).</summary>
    public static ClipTextNormalizer Instance { get; } = new();

    private ClipTextNormalizer()
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
        text = PythonStrip(PythonHtml.Unescape(PythonHtml.Unescape(text)));
        // whitespace_clean
        text = PythonStrip(Whitespace().Replace(text, " "));
        return PythonLower(text);
    }

    /// <summary>Python's <c>str.strip()</c>: its <c>isspace</c> also counts U+001C..U+001F, which .NET does not.</summary>
    internal static string PythonStrip(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && IsPythonSpace(text[start])) start++;
        while (end > start && IsPythonSpace(text[end - 1])) end--;
        return text[start..end];
    }

    private static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary>
    /// Python's <c>str.lower()</c>: full case mapping, so <c>İ</c> becomes <c>i̇</c> (two code points) and a capital
    /// sigma ending a word becomes <c>ς</c>; everything else maps one code point to one, as <see cref="Rune.ToLowerInvariant"/> does.
    /// </summary>
    internal static string PythonLower(string text)
    {
        var result = new StringBuilder(text.Length);
        int index = 0;
        foreach (Rune rune in text.EnumerateRunes())
        {
            if (rune.Value == 0x0130)
                result.Append("i\u0307");
            else if (rune.Value == 0x03A3)
                result.Append(IsFinalSigma(text, index) ? 'ς' : 'σ');
            else
                result.Append(Rune.ToLowerInvariant(rune).ToString());
            index += rune.Utf16SequenceLength;
        }
        return result.ToString();
    }

    // Unicode's Final_Sigma condition, as CPython's handle_capital_sigma evaluates it: a cased letter before the
    // sigma and none after it, skipping case-ignorable characters on both sides.
    private static bool IsFinalSigma(string text, int index)
    {
        int before = index;
        Rune previous = default;
        bool found = false;
        while (before > 0 && Rune.DecodeLastFromUtf16(text.AsSpan(0, before), out previous, out int length) == System.Buffers.OperationStatus.Done)
        {
            before -= length;
            if (!IsCaseIgnorable(previous)) { found = true; break; }
        }
        if (!found || !IsCased(previous))
            return false;

        int after = index + 1;
        while (after < text.Length && Rune.DecodeFromUtf16(text.AsSpan(after), out Rune next, out int length) == System.Buffers.OperationStatus.Done)
        {
            if (!IsCaseIgnorable(next))
                return !IsCased(next);
            after += length;
        }
        return true;
    }

    // Approximates the Cased property: letters with case, plus anything that has a case mapping (ª, ⓐ, ...).
    private static bool IsCased(Rune rune) =>
        Rune.GetUnicodeCategory(rune) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
        || Rune.ToLowerInvariant(rune) != rune || Rune.ToUpperInvariant(rune) != rune;

    // Case_Ignorable: Mn, Me, Cf, Lm, Sk, and the Word_Break MidLetter / MidNumLet / Single_Quote characters.
    private static bool IsCaseIgnorable(Rune rune) =>
        Rune.GetUnicodeCategory(rune) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || rune.Value is '\'' or '.' or ':' or 0x00B7 or 0x0387 or 0x055F or 0x05F4 or 0x2018 or 0x2019 or 0x2024
            or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
}
