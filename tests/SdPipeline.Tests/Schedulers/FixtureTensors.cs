using System.Buffers.Binary;
using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Schedulers;

/// <summary>
/// A minimal safetensors reader for the scheduler fixtures (F32, F64, I64 only).
/// Stand-in until these tests can use SdPipeline.Weights; it reads the whole small file into memory.
/// </summary>
internal sealed class FixtureTensors
{
    private readonly byte[] _bytes;
    private readonly long _dataStart;
    private readonly JObject _header;

    private FixtureTensors(string path)
    {
        Path = path;
        _bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(_bytes.AsSpan(0, 8));
        _header = JObject.Parse(System.Text.Encoding.UTF8.GetString(_bytes, 8, checked((int)headerLength)));
        _dataStart = 8 + headerLength;
    }

    public string Path { get; }

    /// <summary>Opens <c>parity/NAME.safetensors</c> of the shared fixtures.</summary>
    public static FixtureTensors OpenParity(string name) =>
        new(System.IO.Path.Combine(RepoPaths.Fixtures, "parity", name + ".safetensors"));

    public IEnumerable<string> Names => _header.Properties().Select(p => p.Name).Where(n => n != "__metadata__");

    /// <summary>A fresh tensor holding a copy of the named entry.</summary>
    public Tensor Get(string name)
    {
        if (_header[name] is not JObject entry)
            throw new KeyNotFoundException($"{Path} has no tensor '{name}'");
        string dtype = entry["dtype"]!.Value<string>()!;
        long[] shape = entry["shape"]!.Values<long>().ToArray();
        long[] offsets = entry["data_offsets"]!.Values<long>().ToArray();
        var span = _bytes.AsSpan(checked((int)(_dataStart + offsets[0])), checked((int)(offsets[1] - offsets[0])));
        return dtype switch
        {
            "F32" => tensor(Decode(span, 4, s => BinaryPrimitives.ReadSingleLittleEndian(s)), shape, ScalarType.Float32),
            "F64" => tensor(Decode(span, 8, s => BinaryPrimitives.ReadDoubleLittleEndian(s)), shape, ScalarType.Float64),
            "I64" => tensor(Decode(span, 8, s => BinaryPrimitives.ReadInt64LittleEndian(s)), shape, ScalarType.Int64),
            _ => throw new NotSupportedException($"{Path}: '{name}' has dtype {dtype}; this test reader handles F32, F64 and I64"),
        };
    }

    private delegate T Reader<T>(ReadOnlySpan<byte> bytes);

    private static T[] Decode<T>(ReadOnlySpan<byte> bytes, int size, Reader<T> read)
    {
        var values = new T[bytes.Length / size];
        for (int i = 0; i < values.Length; i++)
            values[i] = read(bytes.Slice(i * size, size));
        return values;
    }
}
