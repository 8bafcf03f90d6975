namespace SdPipeline.Tokenization;

/// <summary>
/// CLIP's (and GPT-2's) <c>bytes_to_unicode</c>: every byte gets a printable character, so a byte-level BPE
/// vocabulary can be stored as text. Printable Latin-1 bytes stand for themselves; the other 68 (controls, space,
/// 0x7F-0xA0, the soft hyphen) take U+0100 onwards in byte order: space is <c>Ġ</c>, 0xA0 is <c>ł</c>.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers applies the same table internally when <c>BpeOptions.ByteLevel</c> is set, but does not
/// expose it; <see cref="CharacterVocabulary"/> needs it to write a vocabulary in CLIP's order.
/// </remarks>
internal static class ByteLevelAlphabet
{
    /// <summary>The character standing for each byte value.</summary>
    public static IReadOnlyList<char> CharOfByte { get; }

    /// <summary>The bytes in CLIP's vocabulary order: the printable ones ascending, then the remapped ones ascending.</summary>
    public static IReadOnlyList<byte> VocabularyOrder { get; }

    static ByteLevelAlphabet()
    {
        static bool Printable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

        var charOfByte = new char[256];
        var order = new List<byte>(256);
        for (int b = 0; b < 256; b++)
            if (Printable(b))
            {
                charOfByte[b] = (char)b;
                order.Add((byte)b);
            }
        int next = 0;
        for (int b = 0; b < 256; b++)
            if (!Printable(b))
            {
                charOfByte[b] = (char)(256 + next++);
                order.Add((byte)b);
            }
        CharOfByte = charOfByte;
        VocabularyOrder = order;
    }
}
