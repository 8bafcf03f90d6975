using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;

namespace SdPipeline.Tests.Tokenization;

public sealed class CharacterVocabularyTests
{
    [Test]
    public void WriteTo_Should_GiveCharacterTokens_When_LoadedByClipTokenizer()
    {
        // Given the character vocabulary written to a folder
        using var temp = new TempFolder();
        CharacterVocabulary.WriteTo(temp.Path);

        // When ClipTokenizer loads it and encodes a caption
        var tokenizer = ClipTokenizer.FromFolder(temp.Path);
        long[] ids = tokenizer.Encode("a red circle");

        // Then each byte is a token, a word's last byte carries </w>, and every id fits the vocabulary
        var tokenOf = JObject.Parse(File.ReadAllText(temp.File("vocab.json"))).Properties().ToDictionary(p => (long)p.Value, p => p.Name);
        string[] expected = ["<|startoftext|>", "a</w>", "r", "e", "d</w>", "c", "i", "r", "c", "l", "e</w>", "<|endoftext|>"];
        Assert.That(ids[..expected.Length].Select(id => tokenOf[id]), Is.EqualTo(expected));
        Assert.That(ids[expected.Length..], Is.All.EqualTo(CharacterVocabulary.EndOfTextId));
        Assert.That(tokenizer.VocabularySize, Is.EqualTo(CharacterVocabulary.Size));
        Assert.That(ids, Is.All.LessThan(CharacterVocabulary.Size));
    }

    [Test]
    public void Entries_Should_FollowClipLayout_When_ComparedWithTheRealVocabulary()
    {
        // Given CLIP's real vocabulary, whose first 512 entries are the byte characters and their </w> forms
        var clip = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "clip-tokenizer", "vocab.json")));

        // When the character vocabulary is built
        var entries = CharacterVocabulary.Entries();

        // Then those 512 entries are identical, and the special tokens follow them
        Assert.That(entries, Has.Count.EqualTo(CharacterVocabulary.Size));
        Assert.That(entries.Take(512).Select(e => (e.Key, e.Value)),
            Is.EqualTo(entries.Take(512).Select(e => (e.Key, clip.Value<int>(e.Key)))));
        Assert.That(entries[^2], Is.EqualTo(new KeyValuePair<string, int>("<|startoftext|>", CharacterVocabulary.StartOfTextId)));
        Assert.That(entries[^1], Is.EqualTo(new KeyValuePair<string, int>("<|endoftext|>", CharacterVocabulary.EndOfTextId)));
    }

    [Test]
    public void WriteTo_Should_EncodeEveryByte_When_PromptIsNotAscii()
    {
        using var temp = new TempFolder();
        CharacterVocabulary.WriteTo(temp.Path);
        var tokenizer = ClipTokenizer.FromFolder(temp.Path);

        // "é" is two UTF-8 bytes, "🐱" four: one token each, never an unknown
        IReadOnlyList<int> ids = tokenizer.EncodeToBpeIds("é 🐱");

        Assert.That(ids, Has.Count.EqualTo(6));
        Assert.That(ids, Is.All.LessThan(512));
    }

    [Test]
    public void WriteTo_Should_WriteTheSameBytes_When_RunTwice()
    {
        using var first = new TempFolder();
        using var second = new TempFolder();

        CharacterVocabulary.WriteTo(first.Path);
        CharacterVocabulary.WriteTo(second.Path);

        foreach (string name in new[] { "vocab.json", "merges.txt", "tokenizer_config.json" })
            Assert.That(File.ReadAllBytes(second.File(name)), Is.EqualTo(File.ReadAllBytes(first.File(name))), name);
    }
}
