using System.Globalization;
using System.Text;

namespace SdPipeline.Tokenization;

/// <summary>Python's <c>str</c> methods where their semantics differ from .NET's: both CLIP tokenizers are Python code.</summary>
internal static class PythonText
{
    /// <summary>Python's <c>str.strip()</c>: its <c>isspace</c> also counts U+001C..U+001F, which .NET does not.</summary>
    public static string Strip(string text)
    {
        int start = 0, end = text.Length;
        while (start < end && IsSpace(text[start])) start++;
        while (end > start && IsSpace(text[end - 1])) end--;
        return text[start..end];
    }

    /// <summary>Python's <c>str.isspace()</c> for one UTF-16 unit (.NET's white space plus U+001C..U+001F).</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary>
    /// Python's <c>str.lower()</c>: full case mapping, so <c>İ</c> becomes <c>i̇</c> (two code points) and a capital
    /// sigma ending a word becomes <c>ς</c>; everything else maps one code point to one, as <see cref="Rune.ToLowerInvariant"/> does.
    /// </summary>
    public static string Lower(string text)
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
