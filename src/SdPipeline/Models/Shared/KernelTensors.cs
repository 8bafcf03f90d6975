using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// How the project's CPU kernels (<see cref="AttentionKernel"/>, <see cref="GroupNormKernel"/>,
/// <see cref="WinogradConvolution"/>) reach a tensor's memory and share their work among threads.
/// </summary>
internal static unsafe class KernelTensors
{
    /// <summary>A CPU float32 tensor whose bytes TorchSharp can span (its span's length is an int).</summary>
    public static bool Addressable(Tensor tensor) =>
        tensor.device_type == DeviceType.CPU && tensor.dtype == ScalarType.Float32 && tensor.NumberOfElements <= int.MaxValue / sizeof(float);

    /// <summary>The first element of a contiguous addressable tensor (TorchSharp refuses any other).</summary>
    public static float* Address(Tensor tensor) => (float*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.bytes));

    /// <summary>
    /// The first element of a non-empty addressable tensor of any strides (a weight stored channels-last, a chunk of a
    /// larger buffer), through a dense view of its storage from there; the caller addresses the rest by the strides.
    /// </summary>
    public static float* FirstElement(Tensor tensor)
    {
        // The view only names the storage the tensor holds, so the address outlives it.
        using var dense = tensor.as_strided([tensor.numel()], [1], tensor.storage_offset());
        return Address(dense);
    }

    /// <summary>
    /// Whether <paramref name="input"/> [B, C, …] has its channels adjacent at every position (and is otherwise dense):
    /// the layout oneDNN's channels-last convolutions read and write.
    /// </summary>
    public static bool ChannelsLast(Tensor input)
    {
        if (input.dim() < 3 || input.is_contiguous()) return false;
        long[] shape = input.shape, stride = input.stride();
        long channels = shape[1];
        if (stride[1] != 1) return false;
        long expected = channels;
        for (int d = shape.Length - 1; d >= 2; d--)
        {
            if (shape[d] != 1 && stride[d] != expected) return false;
            expected *= shape[d];
        }
        return shape[0] == 1 || stride[0] == expected;
    }

    /// <summary>
    /// A 64-byte-aligned native buffer of at least <paramref name="floats"/> floats (16 at the least) for a kernel's
    /// scratch, freed with <c>NativeMemory.AlignedFree</c>; <paramref name="what"/> names it in the out-of-memory error.
    /// </summary>
    public static float* AllocateFloats(long floats, string what)
    {
        var buffer = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(floats, 16) * sizeof(float)), 64);
        if (buffer == null) throw new OutOfMemoryException($"{what} of {floats} floats");
        return buffer;
    }

    /// <summary>The share [First, First + Count) of <paramref name="count"/> items that part <paramref name="part"/> of <paramref name="parts"/> takes: equal to within one, in order.</summary>
    public static (long First, long Count) Share(long count, int parts, int part)
    {
        long first = count * part / parts, end = count * (part + 1) / parts;
        return (first, end - first);
    }
}
