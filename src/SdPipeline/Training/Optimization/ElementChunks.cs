using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training.Optimization;

/// <summary>
/// The element-wise passes over every trained tensor (AdamW, the gradient norm, the EMA), cut into equal chunks spread
/// over the threads: at SD 1.5's size each pass moves gigabytes, and one tensor a work item would leave a thread alone
/// with the largest.
/// </summary>
internal static unsafe class ElementChunks
{
    // Large enough to amortise scheduling, small enough to balance two to a few dozen threads.
    private const int Elements = 1 << 16;

    /// <summary>Elements <see cref="Start"/> to <see cref="Start"/> + <see cref="Length"/> of the tensor at <see cref="Tensor"/> in the caller's list.</summary>
    public readonly record struct Chunk(int Tensor, long Start, int Length);

    /// <summary>
    /// Whether a kernel can address <paramref name="tensor"/>: a contiguous float32 CPU tensor TorchSharp can span (its
    /// span's length is an int, so a tensor of 2 GiB or more cannot be).
    /// </summary>
    public static bool Supports(Tensor tensor) =>
        tensor.device_type == DeviceType.CPU && tensor.dtype == ScalarType.Float32 && tensor.is_contiguous()
        && tensor.NumberOfElements <= int.MaxValue / sizeof(float);

    /// <summary>The first element of a tensor for which <see cref="Supports"/> holds (TorchSharp's span over its storage, no copy).</summary>
    public static nint Address(Tensor tensor) => (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.bytes));

    /// <summary>The chunks of tensors of <paramref name="lengths"/> elements, tensor by tensor, in order.</summary>
    public static List<Chunk> Of(IEnumerable<long> lengths)
    {
        var chunks = new List<Chunk>();
        int tensor = 0;
        foreach (long length in lengths)
        {
            for (long start = 0; start < length; start += Elements)
                chunks.Add(new Chunk(tensor, start, (int)Math.Min(Elements, length - start)));
            tensor++;
        }
        return chunks;
    }

    /// <summary>Runs <paramref name="body"/> on every chunk (with its index) on up to <paramref name="threads"/> threads.</summary>
    public static void Run(IReadOnlyList<Chunk> chunks, int threads, Action<Chunk, int> body) =>
        Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, c => body(chunks[c], c));
}
