using System.Text;
using Newtonsoft.Json;

namespace SdPipeline.Tokenization;

/// <summary>
/// A character-level vocabulary in CLIP's file format, for the offline <c>builtin:tiny</c> model (CLIP's real
/// 49,408-entry vocabulary stays out of the repository). <see cref="ClipTokenizer"/> loads it unchanged and, with
/// no merges, encodes a prompt one UTF-8 byte per token: "a red circle" is <c>a&lt;/w&gt; r e d&lt;/w&gt; c i r c l e&lt;/w&gt;</c>
/// (a trailing <c>&lt;/w&gt;</c> marks each word's last byte).
/// </summary>
/// <remarks>
/// <see cref="Size"/> = 514 entries, laid out as CLIP lays out the start of its own: ids 0-255 are the 256
/// <c>bytes_to_unicode</c> characters in CLIP's order, 256-511 the same with <c>&lt;/w&gt;</c>, then
/// <c>&lt;|startoftext|&gt;</c> = 512 and <c>&lt;|endoftext|&gt;</c> = 513 (also the padding). A text encoder for it
/// needs <c>vocab_size</c> ≥ 514.
/// </remarks>
public static class CharacterVocabulary
{
    /// <summary>The number of entries: 256 byte characters, 256 end-of-word variants, 2 special tokens.</summary>
    public const int Size = 514;

    /// <summary>The id of <c>&lt;|startoftext|&gt;</c>.</summary>
    public const int StartOfTextId = 512;

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c>, which also pads.</summary>
    public const int EndOfTextId = 513;

    /// <summary>Token → id, in id order.</summary>
    public static IReadOnlyList<KeyValuePair<string, int>> Entries()
    {
        var entries = new List<KeyValuePair<string, int>>(Size);
        foreach (byte b in ByteLevelAlphabet.VocabularyOrder)
            entries.Add(new(ByteLevelAlphabet.CharOfByte[b].ToString(), entries.Count));
        foreach (byte b in ByteLevelAlphabet.VocabularyOrder)
            entries.Add(new(ByteLevelAlphabet.CharOfByte[b] + "</w>", entries.Count));
        entries.Add(new(ClipTokenizer.StartOfTextToken, entries.Count));
        entries.Add(new(ClipTokenizer.EndOfTextToken, entries.Count));
        return entries;
    }

    /// <summary>
    /// Writes <c>vocab.json</c>, <c>merges.txt</c> (the version line, no merges) and <c>tokenizer_config.json</c>
    /// (77 tokens, padded with <c>&lt;|endoftext|&gt;</c>) into <paramref name="folder"/>, creating it. The bytes are
    /// the same on every run and platform, so the files can feed a content-addressed cache.
    /// </summary>
    public static void WriteTo(string folder)
    {
        Directory.CreateDirectory(folder);
        var vocabulary = new StringBuilder("{");
        foreach (var (token, id) in Entries())
            vocabulary.Append(id == 0 ? "" : ", ").Append(JsonConvert.ToString(token)).Append(": ").Append(id);
        vocabulary.Append("}\n");

        const string config = """
            {
              "tokenizer_class": "CLIPTokenizer",
              "model_max_length": 77,
              "bos_token": "<|startoftext|>",
              "eos_token": "<|endoftext|>",
              "pad_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>"
            }

            """;
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        File.WriteAllText(Path.Combine(folder, "vocab.json"), vocabulary.ToString(), utf8);
        File.WriteAllText(Path.Combine(folder, "merges.txt"), "#version: 0.2\n", utf8);
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ReplaceLineEndings("\n"), utf8);
    }
}
