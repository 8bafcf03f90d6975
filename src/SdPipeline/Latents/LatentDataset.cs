using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Latents;

/// <summary>
/// The latent cache opened for training: the index in memory, the shards memory-mapped, rows copied out
/// into batch tensors on demand (so a cache larger than RAM trains at disk speed, not not at all).
/// </summary>
public sealed class LatentDataset : IDisposable
{
    private readonly Dictionary<string, SafeTensorsFile> _shards;

    private LatentDataset(string folder, LatentIndex index, Dictionary<string, SafeTensorsFile> shards)
    {
        Folder = folder;
        Index = index;
        _shards = shards;
    }

    /// <summary>The latents artifact folder.</summary>
    public string Folder { get; }

    /// <summary>The index.</summary>
    public LatentIndex Index { get; }

    /// <summary>Rows of a split (<c>train</c> or <c>heldout</c>).</summary>
    public IReadOnlyList<LatentRow> Rows(string split) => Index.Rows.Where(r => r.Split == split).ToList();

    /// <summary>Opens a latents artifact.</summary>
    public static LatentDataset Open(string folder)
    {
        var index = LatentIndex.Read(folder);
        var shards = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (string name in index.Rows.Select(r => r.Shard).Distinct())
                shards[name] = SafeTensorsFile.Open(Path.Combine(folder, name));
        }
        catch
        {
            foreach (var shard in shards.Values) shard.Dispose();
            throw;
        }
        return new LatentDataset(folder, index, shards);
    }

    /// <summary>The raw bytes of <paramref name="rows"/> for each tensor, in row order (thread-safe: no tensors made).</summary>
    public RawBatch ReadRaw(IReadOnlyList<LatentRow> rows)
    {
        if (rows.Count == 0) throw new ArgumentException("a batch needs rows", nameof(rows));
        if (rows.Select(r => r.Bucket).Distinct().Count() > 1)
            throw new ArgumentException($"a batch must hold one bucket, got {string.Join(", ", rows.Select(r => r.Bucket).Distinct())}", nameof(rows));
        var parts = new Dictionary<string, (byte[] Bytes, ScalarType DType, long[] Shape)>();
        foreach (string name in Index.Sdxl ? [.. LatentTensorNames.Common, .. LatentTensorNames.SdxlOnly] : LatentTensorNames.Common)
        {
            var first = _shards[rows[0].Shard].Entry(name);
            long rowBytes = first.Length / first.Shape[0];
            var bytes = new byte[rowBytes * rows.Count];
            for (int i = 0; i < rows.Count; i++)
            {
                var shard = _shards[rows[i].Shard];
                var entry = shard.Entry(name);
                shard.Bytes(entry).Slice((int)(rowBytes * rows[i].Row), (int)rowBytes).CopyTo(bytes.AsSpan((int)(rowBytes * i)));
            }
            parts[name] = (bytes, first.DType, [rows.Count, .. first.Shape[1..]]);
        }
        return new RawBatch(rows, parts);
    }

    /// <summary>Reads <paramref name="rows"/> (one bucket) into CPU tensors.</summary>
    public LatentBatch Read(IReadOnlyList<LatentRow> rows) => ReadRaw(rows).ToTensors();

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var shard in _shards.Values) shard.Dispose();
    }

    /// <summary>A batch as bytes, made on a loader thread and turned into tensors on the training thread.</summary>
    /// <param name="Rows">The rows.</param>
    /// <param name="Parts">Per tensor name: bytes, dtype, shape.</param>
    public sealed record RawBatch(IReadOnlyList<LatentRow> Rows, IReadOnlyDictionary<string, (byte[] Bytes, ScalarType DType, long[] Shape)> Parts)
    {
        /// <summary>The batch as CPU tensors.</summary>
        public LatentBatch ToTensors()
        {
            Tensor Make(string name)
            {
                var (bytes, dtype, shape) = Parts[name];
                var tensor = torch.empty(shape, dtype);
                tensor.bytes = bytes;
                return tensor;
            }
            return new LatentBatch(Rows, Make(LatentTensorNames.Mean), Make(LatentTensorNames.Std), Make(LatentTensorNames.InputIds), Make(LatentTensorNames.TextEmbeddings))
            {
                Sdxl = Parts.ContainsKey(LatentTensorNames.PooledTextEmbeddings)
                    ? new SdxlLatentColumns(Make(LatentTensorNames.InputIds2), Make(LatentTensorNames.PooledTextEmbeddings),
                        Make(LatentTensorNames.OriginalSize), Make(LatentTensorNames.CropTopLeft))
                    : null,
            };
        }
    }
}
