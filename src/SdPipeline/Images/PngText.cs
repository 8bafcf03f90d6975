using System.IO.Hashing;
using System.Text;

namespace SdPipeline.Images;

/// <summary>
/// PNG text chunks: where samples carry their generation parameters (prompt, seed, sampler…), as
/// AUTOMATIC1111 and ComfyUI do, so any PNG viewer or <c>PIL.Image.open(f).text</c> shows them. A text that Latin-1
/// can hold goes in a <c>tEXt</c> chunk, any other in an uncompressed UTF-8 <c>iTXt</c> chunk, as Pillow's
/// <c>PngInfo.add_text</c> chooses.
/// </summary>
public static class PngText
{
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Returns <paramref name="png"/> with one text chunk per entry inserted after IHDR.</summary>
    public static byte[] Insert(byte[] png, IReadOnlyDictionary<string, string> text)
    {
        CheckSignature(png);
        int afterHeader = 8 + 12 + ReadLength(png, 8); // signature + IHDR chunk
        using var output = new MemoryStream();
        output.Write(png, 0, afterHeader);
        foreach (var (keyword, value) in text)
        {
            if (keyword.Length is 0 or > 79 || keyword.Any(c => c < 32 || c > 126))
                throw new ArgumentException($"PNG text keyword '{keyword}' must be 1-79 printable Latin-1 characters", nameof(text));
            byte[] name = Encoding.Latin1.GetBytes(keyword);
            if (value.All(c => c <= 0xFF))
                WriteChunk(output, "tEXt", [.. name, 0, .. Encoding.Latin1.GetBytes(value)]);
            else // keyword, 0, not compressed, method 0, no language tag, no translated keyword, the text
                WriteChunk(output, "iTXt", [.. name, 0, 0, 0, 0, 0, .. Encoding.UTF8.GetBytes(value)]);
        }
        output.Write(png, afterHeader, png.Length - afterHeader);
        return output.ToArray();
    }

    /// <summary>Every <c>tEXt</c> and uncompressed <c>iTXt</c> chunk of <paramref name="png"/>, keyword → text.</summary>
    public static Dictionary<string, string> Read(byte[] png)
    {
        CheckSignature(png);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int offset = 8; offset + 12 <= png.Length;)
        {
            int length = ReadLength(png, offset);
            string type = Encoding.ASCII.GetString(png, offset + 4, 4);
            if (type == "tEXt")
            {
                var data = png.AsSpan(offset + 8, length);
                int zero = data.IndexOf((byte)0);
                result[Encoding.Latin1.GetString(data[..zero])] = Encoding.Latin1.GetString(data[(zero + 1)..]);
            }
            else if (type == "iTXt")
            {
                var data = png.AsSpan(offset + 8, length);
                int zero = data.IndexOf((byte)0);
                var rest = data[(zero + 3)..]; // after the compression flag and method
                int languageEnd = rest.IndexOf((byte)0);
                int translatedEnd = languageEnd + 1 + rest[(languageEnd + 1)..].IndexOf((byte)0);
                var text = rest[(translatedEnd + 1)..];
                if (data[zero + 1] == 0) // uncompressed, as Insert writes them
                    result[Encoding.Latin1.GetString(data[..zero])] = Encoding.UTF8.GetString(text);
            }
            if (type == "IEND") break;
            offset += 12 + length;
        }
        return result;
    }

    private static void WriteChunk(Stream output, string type, byte[] data)
    {
        byte[] typeBytes = Encoding.ASCII.GetBytes(type);
        Span<byte> length = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        output.Write(length);
        output.Write(typeBytes);
        output.Write(data);
        var crc = new Crc32();
        crc.Append(typeBytes);
        crc.Append(data);
        Span<byte> crcBytes = stackalloc byte[4];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(crcBytes, crc.GetCurrentHashAsUInt32());
        output.Write(crcBytes);
    }

    private static int ReadLength(byte[] png, int offset) => System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(offset, 4));

    private static void CheckSignature(byte[] png)
    {
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(Signature))
            throw new InvalidDataException("not a PNG file");
    }
}
