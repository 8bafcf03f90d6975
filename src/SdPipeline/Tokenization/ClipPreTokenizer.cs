using System.Globalization;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace SdPipeline.Tokenization;

/// <summary>
/// CLIP's word splitting: the pieces <c>regex.findall</c> returns for
/// <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
/// (IGNORECASE), as (offset, length) ranges in UTF-16 units. Whitespace separates pieces and belongs to none.
/// </summary>
/// <remarks>
/// A scanner rather than Microsoft.ML.Tokenizers' <see cref="RegexPreTokenizer"/> with the same pattern: .NET's
/// regex engine classifies UTF-16 code units, so a letter outside the BMP (𝐀, CJK extension B) would be two
/// surrogates, neither in <c>\p{L}</c>, and would be glued to neighbouring punctuation, where Python's <c>regex</c>
/// (which works on code points) makes it a word of its own. Scanning <see cref="Rune"/>s keeps Python's semantics.
/// </remarks>
internal sealed class ClipPreTokenizer : PreTokenizer
{
    private static readonly string[] s_specialTokens = ["<|startoftext|>", "<|endoftext|>"];
    private static readonly string[] s_contractions = ["s", "t", "re", "ve", "m", "ll", "d"];

    /// <summary>The one instance (the split has no settings).</summary>
    public static ClipPreTokenizer Instance { get; } = new();

    private ClipPreTokenizer()
    {
    }

    /// <inheritdoc/>
    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => Split(text);

    /// <inheritdoc/>
    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => Split(text.ToString());

    /// <summary>The pieces of <paramref name="text"/>, in order.</summary>
    public static List<(int Offset, int Length)> Split(string text)
    {
        var pieces = new List<(int Offset, int Length)>();
        int i = 0;
        while (i < text.Length)
        {
            Rune rune = RuneAt(text, i, out int length);
            // The alternatives in the pattern's order: the first that matches at i wins.
            if (MatchSpecialToken(text, i) is int special)
                length = special;
            else if (MatchContraction(text, i) is int contraction)
                length = contraction;
            else if (IsLetter(rune))
                length = RunLength(text, i, IsLetter);
            else if (IsNumber(rune))
            {
                // one digit a piece: [\p{N}] has no '+', so `length` stays one code point
            }
            else if (Rune.IsWhiteSpace(rune))
            {
                i += length;
                continue;
            }
            else
                length = RunLength(text, i, r => !Rune.IsWhiteSpace(r) && !IsLetter(r) && !IsNumber(r));

            pieces.Add((i, length));
            i += length;
        }
        return pieces;
    }

    private static int? MatchSpecialToken(string text, int i)
    {
        foreach (string token in s_specialTokens)
            if (text.AsSpan(i).StartsWith(token, StringComparison.OrdinalIgnoreCase))
                return token.Length;
        return null;
    }

    private static int? MatchContraction(string text, int i)
    {
        if (text[i] != '\'')
            return null;
        foreach (string suffix in s_contractions)
        {
            if (i + 1 + suffix.Length > text.Length)
                continue;
            bool match = true;
            for (int k = 0; k < suffix.Length && match; k++)
                match = FoldsTo(text[i + 1 + k], suffix[k]);
            if (match)
                return 1 + suffix.Length;
        }
        return null;
    }

    // IGNORECASE with simple case folding, as `regex` applies it: 'S' and 'ſ' (long s) both match 's'.
    private static bool FoldsTo(char c, char lower) =>
        c == lower || char.ToLowerInvariant(c) == lower || (lower == 's' && c == 'ſ');

    private static int RunLength(string text, int start, Func<Rune, bool> belongs)
    {
        int i = start;
        while (i < text.Length)
        {
            if (!belongs(RuneAt(text, i, out int length)))
                break;
            i += length;
        }
        return i - start;
    }

    // A lone surrogate reads as U+FFFD (a symbol) one unit long instead of throwing.
    private static Rune RuneAt(string text, int i, out int length)
    {
        Rune.DecodeFromUtf16(text.AsSpan(i), out Rune rune, out length);
        return rune;
    }

    private static bool IsLetter(Rune rune) => Rune.GetUnicodeCategory(rune) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter;

    private static bool IsNumber(Rune rune) => Rune.GetUnicodeCategory(rune) is UnicodeCategory.DecimalDigitNumber
        or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
}
