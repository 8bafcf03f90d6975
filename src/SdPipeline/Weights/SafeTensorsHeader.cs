using System.Text;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Weights;

/// <summary>
/// The JSON header of a safetensors file, checked against the format's own rules before any byte of tensor
/// data is touched: a file from the Hub, a LoRA from a stranger or a half-written checkpoint is rejected with
/// the key that breaks the rule, rather than read out of bounds or reinterpreted.
/// </summary>
/// <remarks>
/// The rules are those the reference implementation (the <c>safetensors</c> crate) enforces: the header is at
/// most 100,000,000 bytes of UTF-8 JSON starting with <c>{</c>; every tensor has a known dtype, a shape of
/// non-negative sizes and <c>[begin, end]</c> offsets with <c>end - begin = dtype size × element count</c>,
/// computed without overflow; sorted by offset, the tensors tile the data section exactly, starting at 0
/// with no gap or overlap and ending at the end of the file; <c>__metadata__</c> maps strings to strings.
/// </remarks>
public static class SafeTensorsHeader
{
    /// <summary>The largest header the format allows (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private static readonly JsonLoadSettings StrictJson = new() { DuplicatePropertyNameHandling = DuplicatePropertyNameHandling.Error };

    /// <summary>Checks a header length read from the file's first 8 bytes against the file's size.</summary>
    public static void CheckLength(long headerLength, long fileLength, string path)
    {
        if (headerLength <= 0 || headerLength > MaxHeaderBytes)
            throw new WeightsException($"{path}: header length {headerLength} is outside 1..{MaxHeaderBytes} bytes (not a safetensors file, or a hostile one)");
        if (8 + headerLength > fileLength)
            throw new WeightsException($"{path}: header length {headerLength} does not fit a {fileLength}-byte file (truncated download?)");
    }

    /// <summary>
    /// Parses and validates the header bytes of a file of <paramref name="fileLength"/> bytes; entry offsets
    /// in the result are absolute (from the start of the file).
    /// </summary>
    /// <exception cref="WeightsException">Any rule broken, naming the file and the tensor.</exception>
    public static (List<SafeTensorsEntry> Entries, Dictionary<string, string> Metadata) Parse(ReadOnlySpan<byte> headerBytes, long fileLength, string path)
    {
        CheckLength(headerBytes.Length, fileLength, path);
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw new WeightsException($"{path}: the safetensors header is not UTF-8 (not a safetensors file?)");
        }
        if (!text.StartsWith('{'))
            throw new WeightsException($"{path}: the safetensors header does not start with '{{' (not a safetensors file?)");

        JObject header;
        try
        {
            header = JObject.Parse(text, StrictJson);
        }
        catch (JsonReaderException e)
        {
            throw new WeightsException($"{path}: unreadable safetensors header: {e.Message}");
        }

        long dataStart = 8 + (long)headerBytes.Length;
        long dataLength = fileLength - dataStart;
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var tensors = new List<(string Name, SafeTensorsEntry Entry, long Begin, long End)>();
        foreach (var property in header.Properties())
        {
            if (property.Name == "__metadata__")
            {
                ReadMetadata(property.Value, metadata, path);
                continue;
            }
            var (entry, begin, end) = ReadTensor(property.Name, property.Value, dataStart, path);
            tensors.Add((property.Name, entry, begin, end));
        }

        long expectedBegin = 0;
        string? last = null;
        foreach (var tensor in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (tensor.Begin != expectedBegin)
                throw new WeightsException(tensor.Begin < expectedBegin
                    ? $"{path}: tensor '{tensor.Name}' starts at data byte {tensor.Begin}, inside the tensor before it (overlapping tensors are not allowed)"
                    : $"{path}: tensor '{tensor.Name}' starts at data byte {tensor.Begin}, leaving a gap after byte {expectedBegin} (tensors must be contiguous)");
            expectedBegin = tensor.End;
            last = tensor.Name;
        }
        if (expectedBegin != dataLength)
            throw new WeightsException(expectedBegin > dataLength
                ? $"{path}: tensor '{last}' ends at data byte {expectedBegin}, past the {dataLength} bytes after the header (truncated download?)"
                : $"{path}: the file has {dataLength - expectedBegin} bytes after its last tensor that no tensor claims (a damaged file, or data appended to it)");

        return (tensors.Select(t => t.Entry).ToList(), metadata);
    }

    private static void ReadMetadata(JToken value, Dictionary<string, string> metadata, string path)
    {
        if (value is not JObject items)
            throw new WeightsException($"{path}: '__metadata__' is a {value.Type}, not an object of strings");
        foreach (var item in items.Properties())
        {
            if (item.Value.Type != JTokenType.String)
                throw new WeightsException($"{path}: '__metadata__' entry '{item.Name}' is a {item.Value.Type}, not a string");
            metadata[item.Name] = item.Value.Value<string>()!;
        }
    }

    private static (SafeTensorsEntry Entry, long Begin, long End) ReadTensor(string name, JToken value, long dataStart, string path)
    {
        if (value is not JObject fields)
            throw new WeightsException($"{path}: tensor '{name}' is described by a {value.Type}, not an object with dtype, shape and data_offsets");
        if (fields["dtype"] is not { Type: JTokenType.String } dtypeToken)
            throw new WeightsException($"{path}: tensor '{name}' has no string 'dtype'");
        var (type, size) = SafeTensorsDType.Parse(dtypeToken.Value<string>()!, path, name);
        long[] shape = ReadIntegers(fields["shape"], name, "shape", path);
        long[] offsets = ReadIntegers(fields["data_offsets"], name, "data_offsets", path);
        if (offsets.Length != 2)
            throw new WeightsException($"{path}: tensor '{name}' has {offsets.Length} data_offsets; the format needs exactly [begin, end]");
        if (shape.Any(d => d < 0))
            throw new WeightsException($"{path}: tensor '{name}' has a negative size in its shape [{string.Join(", ", shape)}]");
        long begin = offsets[0], end = offsets[1];
        if (begin < 0 || end < begin)
            throw new WeightsException($"{path}: tensor '{name}' has data_offsets [{begin}, {end}]; the format needs 0 <= begin <= end");

        long bytes;
        try
        {
            bytes = checked(shape.Aggregate(1L, (a, b) => a * b) * size);
        }
        catch (OverflowException)
        {
            throw new WeightsException($"{path}: tensor '{name}' has shape [{string.Join(", ", shape)}], whose size in bytes overflows 64 bits");
        }
        if (end - begin != bytes)
            throw new WeightsException($"{path}: tensor '{name}' claims {end - begin} bytes for shape [{string.Join(", ", shape)}] of {type} ({bytes} bytes)");
        return (new SafeTensorsEntry(name, type, shape, dataStart + begin, bytes), begin, end);
    }

    private static long[] ReadIntegers(JToken? token, string name, string field, string path)
    {
        if (token is not JArray array || array.Any(d => d.Type != JTokenType.Integer))
            throw new WeightsException($"{path}: tensor '{name}' has no '{field}' list of integers");
        try
        {
            return array.Select(d => d.Value<long>()).ToArray();
        }
        catch (Exception e) when (e is OverflowException or InvalidCastException)
        {
            throw new WeightsException($"{path}: tensor '{name}' has a '{field}' value outside the 64-bit range");
        }
    }
}
