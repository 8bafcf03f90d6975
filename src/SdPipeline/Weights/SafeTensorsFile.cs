using System.IO.MemoryMappedFiles;
using System.Text;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Weights;

/// <summary>
/// A safetensors file opened through a read-only memory map: the header is parsed and checked up front,
/// and tensor bytes are copied straight from the mapped pages into their destination (a module's
/// parameters, usually), so loading a 4 GB checkpoint never holds a second copy of it in memory.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly Dictionary<string, SafeTensorsEntry> _entries;

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>The free-form <c>__metadata__</c> strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>The tensors, by key, in header order.</summary>
    public IReadOnlyList<SafeTensorsEntry> Entries { get; }

    private SafeTensorsFile(string path)
    {
        Path = path;
        var info = new FileInfo(path);
        if (!info.Exists) throw new WeightsException($"{path}: file not found");
        if (info.Length < 8) throw new WeightsException($"{path}: {info.Length} bytes is too short for a safetensors file (truncated?)");

        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;

        long headerLength = *(long*)_base;
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > info.Length)
            throw new WeightsException($"{path}: header length {headerLength} does not fit a {info.Length}-byte file (truncated, or not safetensors?)");
        JObject header;
        try
        {
            header = JObject.Parse(Encoding.UTF8.GetString(_base + 8, (int)headerLength));
        }
        catch (JsonReaderException e)
        {
            throw new WeightsException($"{path}: unreadable safetensors header: {e.Message}");
        }

        long dataStart = 8 + headerLength;
        var entries = new List<SafeTensorsEntry>();
        var metadata = new Dictionary<string, string>();
        foreach (var property in header.Properties())
        {
            if (property.Name == "__metadata__")
            {
                foreach (var item in ((JObject)property.Value).Properties()) metadata[item.Name] = item.Value.ToString();
                continue;
            }
            var value = (JObject)property.Value;
            var (type, size) = SafeTensorsDType.Parse(value.Value<string>("dtype") ?? "", path, property.Name);
            long[] shape = value["shape"]!.Select(d => d.Value<long>()).ToArray();
            long[] offsets = value["data_offsets"]!.Select(d => d.Value<long>()).ToArray();
            long expected = shape.Aggregate(1L, (a, b) => a * b) * size;
            if (offsets.Length != 2 || offsets[1] - offsets[0] != expected)
                throw new WeightsException($"{path}: tensor '{property.Name}' claims {offsets.ElementAtOrDefault(1) - offsets.ElementAtOrDefault(0)} bytes for shape [{string.Join(", ", shape)}] of {type} ({expected} bytes)");
            if (dataStart + offsets[1] > info.Length)
                throw new WeightsException($"{path}: tensor '{property.Name}' ends at byte {dataStart + offsets[1]}, past the end of the {info.Length}-byte file (truncated download?)");
            entries.Add(new SafeTensorsEntry(property.Name, type, shape, dataStart + offsets[0], expected));
        }
        Entries = entries;
        _entries = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        Metadata = metadata;
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="WeightsException">Missing, truncated or malformed file.</exception>
    public static SafeTensorsFile Open(string path)
    {
        if (System.IO.Path.GetExtension(path) is ".ckpt" or ".bin" or ".pt" or ".pth" or ".pkl")
            throw new WeightsException(PickleRefusal.Message(path));
        return new SafeTensorsFile(path);
    }

    /// <summary>Whether the file holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>.</summary>
    public SafeTensorsEntry Entry(string name) =>
        _entries.TryGetValue(name, out var entry) ? entry : throw new WeightsException($"{Path}: no tensor '{name}'");

    /// <summary>The raw bytes of a tensor, straight from the mapped file.</summary>
    public ReadOnlySpan<byte> Bytes(SafeTensorsEntry entry)
    {
        if (entry.Length > int.MaxValue)
            throw new WeightsException($"{Path}: tensor '{entry.Name}' is {entry.Length} bytes; tensors over 2 GiB are not supported");
        return new ReadOnlySpan<byte>(_base + entry.Offset, (int)entry.Length);
    }

    // TorchSharp's Tensor.bytes setter takes a Span<byte> but only reads from it; the mapping is read-only,
    // so a write through this span would fault rather than corrupt the file.
    private Span<byte> SourceSpan(SafeTensorsEntry entry)
    {
        Bytes(entry); // size check
        return new Span<byte>(_base + entry.Offset, (int)entry.Length);
    }

    /// <summary>Copies a tensor into <paramref name="destination"/> (same shape; converting the dtype if needed).</summary>
    public void CopyInto(string name, Tensor destination)
    {
        var entry = Entry(name);
        using var _ = torch.no_grad();
        if (destination.dtype == entry.DType && destination.device_type == DeviceType.CPU && destination.is_contiguous())
        {
            destination.bytes = SourceSpan(entry);
            return;
        }
        using var staged = Read(entry);
        destination.copy_(staged);
    }

    /// <summary>A new CPU tensor holding <paramref name="name"/> in its stored dtype.</summary>
    public Tensor Read(string name) => Read(Entry(name));

    private Tensor Read(SafeTensorsEntry entry)
    {
        var tensor = torch.empty(entry.Shape, entry.DType);
        if (entry.Length > 0) tensor.bytes = SourceSpan(entry);
        return tensor;
    }

    /// <summary>Every tensor, read into memory (for small files: fixtures, tests).</summary>
    public Dictionary<string, Tensor> ReadAll() => Entries.ToDictionary(e => e.Name, Read, StringComparer.Ordinal);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
