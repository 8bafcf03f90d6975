using System.Security.Cryptography;
using Newtonsoft.Json;
using SdPipeline.Files;

namespace SdPipeline.Pipeline;

/// <summary>
/// SHA-256 of local files, hashed once and remembered by path, size and modification time (as DVC and make
/// do), so a plan over a 4 GB weights folder costs milliseconds after the first time.
/// </summary>
public sealed class FileHashCache
{
    private sealed record Entry(long Size, long ModifiedTicks, string Sha256);

    private readonly string? _storePath;
    private readonly Dictionary<string, Entry> _entries;
    private bool _dirty;
    private bool _rehash;
    private readonly HashSet<string> _rehashed = new(StringComparer.Ordinal);

    /// <summary>Opens the cache kept in <paramref name="storePath"/> (null: in memory only).</summary>
    public FileHashCache(string? storePath)
    {
        _storePath = storePath;
        _entries = storePath is not null && File.Exists(storePath)
            ? TryRead(storePath) ?? new Dictionary<string, Entry>()
            : new Dictionary<string, Entry>();
    }

    /// <summary>The SHA-256 of <paramref name="path"/>'s content, as lowercase hex.</summary>
    public string Hash(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"file '{path}' not found", path);
        string key = info.FullName;
        // The file's own size and time, through any link (FileInfo gives a link's own: a linked weight file rewritten in
        // place would keep its remembered hash).
        long size, ticks;
        using (var handle = File.OpenHandle(path))
        {
            size = RandomAccess.GetLength(handle);
            ticks = File.GetLastWriteTimeUtc(handle).Ticks;
        }
        lock (_entries)
        {
            bool trusted = !_rehash || !_rehashed.Add(key);
            if (trusted && _entries.TryGetValue(key, out var known) && known.Size == size && known.ModifiedTicks == ticks)
                return known.Sha256;
        }
        string hash = HashFile(path);
        lock (_entries)
        {
            _entries[key] = new Entry(size, ticks, hash);
            _dirty = true;
        }
        return hash;
    }

    /// <summary>
    /// From now on hashes each file again the first time it is asked for, instead of trusting its size and modification
    /// time: a file edited in place and given back both (<c>touch -r</c>, <c>cp -p</c> of another version) is then seen as
    /// changed. The other files' remembered hashes stay.
    /// </summary>
    public void RehashOnce()
    {
        lock (_entries) _rehash = true;
    }

    /// <summary>Writes the remembered hashes back (atomically), if any were added.</summary>
    public void Save()
    {
        if (_storePath is null) return;
        lock (_entries)
        {
            if (!_dirty) return;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(_storePath))!);
            AtomicFile.WriteAllText(_storePath, JsonConvert.SerializeObject(_entries, Formatting.Indented));
            _dirty = false;
        }
    }

    /// <summary>SHA-256 of a file's content, streamed.</summary>
    public static string HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static Dictionary<string, Entry>? TryRead(string path)
    {
        try
        {
            return JsonConvert.DeserializeObject<Dictionary<string, Entry>>(File.ReadAllText(path));
        }
        catch (JsonException)
        {
            return null; // a damaged cache only costs rehashing
        }
    }
}
