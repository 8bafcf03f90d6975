using SdPipeline.Tokenization;

namespace SdPipeline.Tests.Tokenization;

/// <summary>Python semantics the fixture prompts do not reach; expected values are what CPython 3.13 prints.</summary>
public sealed class OpenAiClipNormalizerTests
{
    [TestCase("fish &amp; chips", "fish & chips")]
    [TestCase("&amp;amp; twice", "& twice")] // basic_clean unescapes twice
    [TestCase("&copy2024 &notit", "©2024 ¬it")] // legacy names match without ';', longest known prefix wins
    [TestCase("&hellip; &NotNestedLessLess;", "… ⪡̸")] // HTML5-only names (the second is two code points)
    [TestCase("R&D AT&T &bogus;", "r&d at&t &bogus;")] // unknown names stay
    [TestCase("&#150;&#x2014;&#1;&#0;", "–—\uFFFD")] // Windows-1252 C1 range, controls dropped, NUL replaced
    [TestCase("&#xD800;&#1114112;", "\uFFFD\uFFFD")] // surrogates and beyond U+10FFFF
    public void Clean_Should_UnescapeLikePythonHtml_When_TextHasCharacterReferences(string text, string expected)
    {
        Assert.That(OpenAiClipNormalizer.Clean(text), Is.EqualTo(expected));
    }

    [TestCase("  A\u3000\t B \n", "a b")]
    [TestCase("\u001Cword\u001F", "word")] // Python's strip() also removes the information separators
    [TestCase("İSTANBUL", "i\u0307stanbul")] // full case mapping: two code points
    [TestCase("ΟΔΟΣ ΣΟΦΟΣ Σ", "οδος σοφος σ")] // final sigma only after a cased letter
    [TestCase("𐐀", "𐐨")] // astral letters lower-case too (Deseret)
    public void Clean_Should_FoldSpaceAndCaseLikePython_When_TextHasUnicode(string text, string expected)
    {
        Assert.That(OpenAiClipNormalizer.Clean(text), Is.EqualTo(expected));
    }
}
