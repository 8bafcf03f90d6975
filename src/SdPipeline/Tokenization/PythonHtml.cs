using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SdPipeline.Tokenization;

/// <summary>
/// A port of CPython's <c>html.unescape</c> (Lib/html/__init__.py), which CLIP's <c>basic_clean</c> applies twice.
/// Written out rather than delegated to <c>WebUtility.HtmlDecode</c> because that one knows only HTML 4 names,
/// needs the semicolon, and maps numeric references differently (Python turns <c>&amp;#150;</c> into an en dash
/// via Windows-1252 and drops control characters such as <c>&amp;#1;</c>).
/// </summary>
internal static partial class PythonHtml
{
    private static readonly Lazy<Dictionary<string, string>> s_entities = new(LoadEntities);

    // Python's pattern, character for character; .NET counts the {1,32} in UTF-16 units where Python counts
    // code points, which only matters for a 17+ character run of astral characters after '&'.
    [GeneratedRegex("&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)", RegexOptions.CultureInvariant)]
    private static partial Regex CharRef();

    /// <summary>Replaces HTML character references the way Python's <c>html.unescape</c> does.</summary>
    public static string Unescape(string text) =>
        text.Contains('&') ? CharRef().Replace(text, m => Replace(m.Groups[1].Value)) : text;

    private static string Replace(string reference)
    {
        if (reference[0] == '#')
            return ReplaceNumeric(reference);

        var entities = s_entities.Value;
        if (entities.TryGetValue(reference, out string? value))
            return value;
        // The longest known prefix wins ("&notit" is "¬it"); only the legacy names can match without ';'.
        for (int length = reference.Length - 1; length > 1; length--)
            if (entities.TryGetValue(reference[..length], out value))
                return value + reference[length..];
        return "&" + reference;
    }

    private static string ReplaceNumeric(string reference)
    {
        bool hex = reference[1] is 'x' or 'X';
        string digits = reference[(hex ? 2 : 1)..].TrimEnd(';');
        bool parsed = hex
            ? ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong number)
            : ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out number);
        if (!parsed)
            number = ulong.MaxValue; // more digits than 64 bits hold: beyond Unicode, as Python finds too

        if (InvalidCharRef(number) is string replacement)
            return replacement;
        if (number is >= 0xD800 and <= 0xDFFF || number > 0x10FFFF)
            return "\uFFFD";
        if (IsInvalidCodePoint((int)number))
            return "";
        return char.ConvertFromUtf32((int)number);
    }

    // html._invalid_charrefs: NUL, CR, and the C1 range read as Windows-1252 (where it defines a character).
    private static string? InvalidCharRef(ulong number) => number switch
    {
        0x00 => "\uFFFD",
        0x0D => "\r",
        0x80 => "\u20AC",
        0x82 => "\u201A",
        0x83 => "\u0192",
        0x84 => "\u201E",
        0x85 => "\u2026",
        0x86 => "\u2020",
        0x87 => "\u2021",
        0x88 => "\u02C6",
        0x89 => "\u2030",
        0x8A => "\u0160",
        0x8B => "\u2039",
        0x8C => "\u0152",
        0x8E => "\u017D",
        0x91 => "\u2018",
        0x92 => "\u2019",
        0x93 => "\u201C",
        0x94 => "\u201D",
        0x95 => "\u2022",
        0x96 => "\u2013",
        0x97 => "\u2014",
        0x98 => "\u02DC",
        0x99 => "\u2122",
        0x9A => "\u0161",
        0x9B => "\u203A",
        0x9C => "\u0153",
        0x9E => "\u017E",
        0x9F => "\u0178",
        0x81 or 0x8D or 0x8F or 0x90 or 0x9D => ((char)number).ToString(),
        _ => null,
    };

    // html._invalid_codepoints: C0/C1 controls except tab, LF, FF, CR; the noncharacters.
    private static bool IsInvalidCodePoint(int cp) =>
        cp is >= 0x1 and <= 0x8 or 0xB or >= 0xE and <= 0x1F or >= 0x7F and <= 0x9F or >= 0xFDD0 and <= 0xFDEF
        || (cp & 0xFFFE) == 0xFFFE;

    private static Dictionary<string, string> LoadEntities()
    {
        var entities = new Dictionary<string, string>(2300, StringComparer.Ordinal);
        foreach (string line in Html5Entities.Table.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string[] parts = line.Split(' ');
            var value = new StringBuilder();
            foreach (string hex in parts.AsSpan(1))
                value.Append(char.ConvertFromUtf32(int.Parse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture)));
            entities.Add(parts[0] + ";", value.ToString());
        }
        foreach (string name in Html5Entities.LegacyNames.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
            entities.Add(name, entities[name + ";"]);
        return entities;
    }
}
