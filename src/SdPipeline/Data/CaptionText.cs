using System.Text;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// Reads the files captions come from (<c>metadata.jsonl</c>, <c>metadata.csv</c>, <c>.txt</c> / <c>.caption</c>
/// sidecars) as UTF-8, a byte-order mark allowed (UTF-8, or UTF-16 when the mark says so). Bytes that are not valid text
/// are an error naming the file and line: .NET's default would turn them into U+FFFD, which transformers' CLIP
/// tokenizer then drops, so a caption saved in another code page ("caf\xE9") would train as "caf" without a word.
/// Hugging Face datasets and kohya's sd-scripts (<c>open(..., encoding="utf-8")</c>) stop at such a file too.
/// </summary>
public static class CaptionText
{
    /// <summary>The whole text of <paramref name="path"/>.</summary>
    /// <exception cref="StageFailedException">The file is not UTF-8 (or marked UTF-16) text.</exception>
    public static string ReadAll(string path)
    {
        using var reader = Open(path);
        try
        {
            return reader.ReadToEnd();
        }
        catch (DecoderFallbackException e)
        {
            throw NotText(path, e);
        }
    }

    /// <summary>The lines of <paramref name="path"/>, read as they are enumerated.</summary>
    /// <exception cref="StageFailedException">A line is not UTF-8 (or marked UTF-16) text.</exception>
    public static IEnumerable<string> ReadLines(string path)
    {
        using var reader = Open(path);
        while (true)
        {
            string? line;
            try
            {
                line = reader.ReadLine();
            }
            catch (DecoderFallbackException e)
            {
                throw NotText(path, e);
            }
            if (line is null) yield break;
            yield return line;
        }
    }

    private static StreamReader Open(string path)
    {
        var stream = File.OpenRead(path);
        Span<byte> mark = stackalloc byte[3];
        int read;
        try
        {
            read = stream.ReadAtLeast(mark, 3, throwOnEndOfStream: false);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        // StreamReader's own mark detection swaps in a lenient decoder, so the mark is read here.
        (Encoding encoding, int skip) = mark[..read] switch
        {
            [0xEF, 0xBB, 0xBF] => (Strict.Utf8, 3),
            [0xFF, 0xFE, ..] => (Strict.Utf16LittleEndian, 2),
            [0xFE, 0xFF, ..] => (Strict.Utf16BigEndian, 2),
            _ => (Strict.Utf8, 0),
        };
        stream.Position = skip;
        return new StreamReader(stream, encoding, detectEncodingFromByteOrderMarks: false);
    }

    private static StageFailedException NotText(string path, DecoderFallbackException e)
    {
        int? line = FirstLineNotUtf8(File.ReadAllBytes(path));
        return new($"{path}{(line is null ? "" : $":{line}")}: not UTF-8 text ({e.Message}); save the file as UTF-8 " +
            "(Hugging Face datasets and kohya's sd-scripts read captions as UTF-8; other bytes would be lost from the caption)", e);
    }

    // The reader decodes a buffer of many lines at once, so the failing line is found again here, line by line.
    private static int? FirstLineNotUtf8(byte[] bytes)
    {
        if (bytes is [0xFF, 0xFE, ..] or [0xFE, 0xFF, ..])
            return null; // UTF-16: its lines are not found by a byte search
        int start = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0, line = 1;
        while (start < bytes.Length)
        {
            int end = bytes.AsSpan(start).IndexOf((byte)'\n');
            end = end < 0 ? bytes.Length : start + end + 1;
            try
            {
                Strict.Utf8.GetCharCount(bytes, start, end - start);
            }
            catch (DecoderFallbackException)
            {
                return line;
            }
            start = end;
            line++;
        }
        return null;
    }

    private static class Strict
    {
        public static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        public static readonly Encoding Utf16LittleEndian = new UnicodeEncoding(bigEndian: false, byteOrderMark: false, throwOnInvalidBytes: true);
        public static readonly Encoding Utf16BigEndian = new UnicodeEncoding(bigEndian: true, byteOrderMark: false, throwOnInvalidBytes: true);
    }
}
