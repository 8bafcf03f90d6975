using System.IO.MemoryMappedFiles;
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
        // The length is the open file's: the OS follows links (the Hub cache's snapshots link every file into blobs/, relatively,
        // and a pipeline folder links whole component folders), where FileInfo.Length would be a link's own.
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new WeightsException($"{path}: file not found{(new FileInfo(path).LinkTarget is { } target ? $" (a link to '{target}', which does not exist)" : "")}");
        }
        catch (IOException e)
        {
            throw new WeightsException($"{path}: cannot be opened: {e.Message}");
        }
        long length = stream.Length;
        if (length < 8)
        {
            stream.Dispose();
            throw new WeightsException($"{path}: {length} bytes is too short for a safetensors file (truncated?)");
        }

        try
        {
            _map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;

        List<SafeTensorsEntry> entries;
        Dictionary<string, string> metadata;
        try
        {
            long headerLength = *(long*)_base;
            SafeTensorsHeader.CheckLength(headerLength, length, path);
            (entries, metadata) = SafeTensorsHeader.Parse(new ReadOnlySpan<byte>(_base + 8, (int)headerLength), length, path);
        }
        catch
        {
            // A rejected file must not stay mapped (or, on Windows, locked against deletion).
            Dispose();
            throw;
        }
        Entries = entries;
        _entries = entries.ToDictionary(e => e.Name, StringComparer.Ordinal);
        Metadata = metadata;
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="WeightsException">Missing, truncated or malformed file.</exception>
    public static SafeTensorsFile Open(string path)
    {
        if (PickleRefusal.IsPickle(path))
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
            ReleaseMappedPages(entry);
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
        ReleaseMappedPages(entry);
        return tensor;
    }

    // Once a tensor is copied out, its pages of the mapping are dropped from this process (they stay in the page
    // cache). Otherwise loading counts every weight twice in the process's memory until the file is closed: a
    // full-size SDXL UNet (9.6 GiB) peaked at 17.5 GiB in the train stage on Linux.
    private void ReleaseMappedPages(SafeTensorsEntry entry)
    {
        if (!OperatingSystem.IsLinux()) return;
        const long page = 4096;
        long start = ((long)_base + entry.Offset + page - 1) / page * page;
        long end = ((long)_base + entry.Offset + entry.Length) / page * page;
        if (end > start) _ = madvise((nint)start, (nuint)(end - start), MadvDontNeed);
    }

    private const int MadvDontNeed = 4;

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int madvise(nint address, nuint length, int advice);

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
