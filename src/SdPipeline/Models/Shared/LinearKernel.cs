using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// A float32 linear layer in inference, y = x·Wᵀ + b, by <see cref="Brgemm"/>'s micro-kernel: each thread takes a share
/// of the output columns, copies the weight's rows for them transposed (the layout the micro-kernel reads), and
/// multiplies every block of rows by that copy. libtorch's <c>linear</c> hands the same product to MKL, which runs
/// its AMD code path on AMD's CPUs.
/// </summary>
/// <remarks>
/// Each output is the same sum of products as libtorch's in another order of additions (blocks of
/// <see cref="DepthBlock"/> terms), so results agree to float32 rounding, not bit for bit.
/// </remarks>
internal static unsafe class LinearKernel
{
    private const int Lanes = 16;
    private const long RowBlock = 64;          // rows of x per micro-kernel call: 64 × 512 of x (128 KiB) stay in L2
    private const long DepthBlock = 512;       // input features per micro-kernel call
    private const long ColumnBlock = 192;      // output features per micro-kernel call
    private const long PackedBytes = 4 << 20;  // the transposed weight a thread holds at once

    /// <summary>Whether this CPU and libtorch can run the kernel.</summary>
    public static bool IsSupported => Avx512F.IsSupported && Brgemm.IsAvailable;

    /// <summary>
    /// Whether the kernel can compute <paramref name="linear"/> on <paramref name="input"/> [..., K]: float32 on the CPU,
    /// contiguous, widths multiples of 16, and no gradient to record.
    /// </summary>
    public static bool Applies(Tensor input, Linear linear)
    {
        if (!IsSupported || linear.weight is not { } weight || weight.dim() != 2 || input.dim() < 2 || input.numel() == 0) return false;
        long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
        if (input.shape[^1] != inFeatures || inFeatures % Lanes != 0 || outFeatures % Lanes != 0) return false;
        if (!Dense(input) || !Dense(weight) || linear.bias is { } bias && !Dense(bias)) return false;
        return !is_grad_enabled() || !input.requires_grad && !weight.requires_grad && linear.bias is not { requires_grad: true };
    }

    private static bool Dense(Tensor tensor) => KernelTensors.Addressable(tensor) && tensor.is_contiguous();

    /// <summary><paramref name="linear"/> applied to <paramref name="input"/> [..., K] (<see cref="Applies"/> first): [..., N].</summary>
    public static Tensor Apply(Tensor input, Linear linear)
    {
        var weight = linear.weight!;
        long outFeatures = weight.shape[0], inFeatures = weight.shape[1], rows = input.numel() / inFeatures;
        long[] shape = [.. input.shape[..^1], outFeatures];
        var output = empty(shape, ScalarType.Float32);
        int parts = (int)Math.Min(Math.Max(1, get_num_threads()), outFeatures / Lanes);
        long depthBlocks = (inFeatures + DepthBlock - 1) / DepthBlock;
        long depth = RoundUp((inFeatures + depthBlocks - 1) / depthBlocks);
        var work = new Columns(KernelTensors.Address(input), KernelTensors.Address(weight),
            linear.bias is { } bias ? KernelTensors.Address(bias) : null, KernelTensors.Address(output),
            rows, inFeatures, outFeatures, depth, parts);
        KernelThreads.Run(parts, ref work);
        return output;
    }

    private static long RoundUp(long count) => (count + Lanes - 1) / Lanes * Lanes;

    // One part's columns (groups of 16 shared out equally), in chunks whose transposed weight fits PackedBytes: each chunk
    // is transposed once, then every block of rows is multiplied by it, panel by panel, while that block of x stays in
    // the second-level cache. (Panels outside, rows inside streamed x from memory once per panel: 105 against 205 GFLOP/s
    // at 8192 × 320 × 1280 on the Zen 4.)
    private readonly struct Columns(float* x, float* w, float* b, float* y, long rows, long inFeatures, long outFeatures, long depth, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (firstGroup, groups) = KernelTensors.Share(outFeatures / Lanes, parts, part);
            if (groups == 0) return;
            long first = firstGroup * Lanes, count = groups * Lanes;
            long chunk = Math.Min(count, Math.Max(Lanes, PackedBytes / (inFeatures * sizeof(float)) / Lanes * Lanes));
            float* packed = (float*)NativeMemory.AlignedAlloc((nuint)(inFeatures * chunk * sizeof(float)), 64);
            try
            {
                for (long start = first; start < first + count; start += chunk)
                {
                    long columns = Math.Min(chunk, first + count - start);
                    long panels = (columns + ColumnBlock - 1) / ColumnBlock;
                    long width = RoundUp((columns + panels - 1) / panels);
                    Pack(w + start * inFeatures, inFeatures, packed, inFeatures, columns);
                    for (long row = 0; row < rows; row += RowBlock)
                    {
                        long height = Math.Min(RowBlock, rows - row);
                        for (long column = 0; column < columns; column += width)
                        {
                            long panelWidth = Math.Min(width, columns - column);
                            float* target = y + row * outFeatures + start + column;
                            bool accumulate = false;
                            if (b != null)
                            {
                                Fill(target, height, panelWidth, outFeatures, b + start + column);
                                accumulate = true;
                            }
                            for (long k = 0; k < inFeatures; k += depth)
                            {
                                Brgemm.Multiply(height, panelWidth, Math.Min(depth, inFeatures - k), inFeatures, columns, outFeatures,
                                    accumulate, x + row * inFeatures + k, packed + k * columns + column, target);
                                accumulate = true;
                            }
                        }
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(packed);
            }
        }
    }

    // The bias in every row of a block of the output, which the first product then adds to.
    private static void Fill(float* target, long rows, long columns, long stride, float* bias)
    {
        for (long r = 0; r < rows; r++)
            new ReadOnlySpan<float>(bias, (int)columns).CopyTo(new Span<float>(target + r * stride, (int)columns));
    }

    // packed[t][c] = weight[c][t] for t < terms, c < columns (both multiples of 16): the weight's rows (output features,
    // `stride` apart) become the packed block's columns, 16 × 16 at a time.
    private static void Pack(float* weight, long stride, float* packed, long terms, long columns)
    {
        for (long c = 0; c < columns; c += Lanes)
            for (long t = 0; t < terms; t += Lanes)
                Transposes.Transpose16(weight + c * stride + t, stride, packed + t * columns + c, columns);
    }
}
