using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// <c>bmm</c> for the Winograd kernels' products on AMD's CPUs: C[t] = A[t]·B[t] for float32
/// [T, M, K] and [T, K, N], by <see cref="Brgemm"/>'s micro-kernel, each thread taking a share of the products' blocks.
/// libtorch's <c>bmm</c> gives each product to MKL, which runs its AMD code path there (see <see cref="Linears"/>). On an
/// AMD EPYC Zen 4 the 512 px batch-2 UNet forward took 0.961× the time with it (seven interleaved rounds, six faster).
/// </summary>
/// <remarks>
/// The channels-last kernel's products (V·Uᵀ, with U made in the transposed layout) run here too, for the VAE: its encode
/// and decode took 0.82× and 0.80× the time (twenty-sixth session); the UNet's 16×16 level, which reaches that kernel
/// through <c>WinogradConvolution.ConvolvePlain</c>, keeps <c>bmm</c>, since its forward was not faster (1.001×, seven
/// rounds, sixteenth session; not faster in two pairs, twenty-sixth).
/// Each output is the same sum of products as <c>bmm</c>'s in another order of additions (blocks of
/// <see cref="DepthBlock"/> terms), so results agree to float32 rounding, not bit for bit.
/// </remarks>
internal static unsafe class BatchedProduct
{
    private const long RowBlock = 64;       // rows of A per micro-kernel call
    private const long ColumnBlock = 192;   // columns of B per micro-kernel call: a 512 × 192 block of B is 384 KiB
    private const long DepthBlock = 512;    // terms per micro-kernel call

    /// <summary>Whether the Winograd kernels' products run here rather than by <c>bmm</c>: under AMD's rules, where libtorch exports the micro-kernel.</summary>
    public static bool Preferred => InferenceKernels.AmdRules && Brgemm.IsAvailable;

    /// <summary>
    /// A[t]·B[t] for every t: [T, M, N], for float32 CPU tensors <paramref name="a"/> [T, M, K] and <paramref name="b"/>
    /// [T, K, N], <paramref name="b"/> contiguous and each matrix of <paramref name="a"/> row-major and dense, its matrices
    /// any distance apart (a chunk's rows of a larger buffer, as the channels-last Winograd kernel holds V).
    /// </summary>
    public static Tensor Multiply(Tensor a, Tensor b)
    {
        long batch = a.shape[0], rows = a.shape[1], depth = a.shape[2], columns = b.shape[2];
        if (!b.is_contiguous() || a.stride(2) != 1 || (rows > 1 && a.stride(1) != depth))
            throw new ArgumentException($"BatchedProduct needs B contiguous and A's matrices dense and row-major; got A strides [{string.Join(", ", a.stride())}], B contiguous: {b.is_contiguous()}");
        var c = empty([batch, rows, columns], ScalarType.Float32);
        long rowBlocks = (rows + RowBlock - 1) / RowBlock, columnBlocks = (columns + ColumnBlock - 1) / ColumnBlock;
        int parts = (int)Math.Min(Math.Max(1, get_num_threads()), batch * rowBlocks * columnBlocks);
        var work = new Blocks(KernelTensors.FirstElement(a), a.stride(0), KernelTensors.Address(b), KernelTensors.Address(c), rows, depth, columns,
            rowBlocks, columnBlocks, batch * rowBlocks * columnBlocks, parts);
        KernelThreads.Run(parts, ref work);
        return c;
    }

    // A share of the blocks, ordered product by product, then column block by column block, so that a thread reuses one
    // block of B (K × 192) for every block of rows while it stays in the second-level cache.
    private readonly struct Blocks(float* a, long aBatchStride, float* b, float* c, long rows, long depth, long columns, long rowBlocks, long columnBlocks, long count, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (first, share) = KernelTensors.Share(count, parts, part);
            for (long item = first; item < first + share; item++)
            {
                long product = item / (rowBlocks * columnBlocks), column = item / rowBlocks % columnBlocks * ColumnBlock, row = item % rowBlocks * RowBlock;
                long height = Math.Min(RowBlock, rows - row), width = Math.Min(ColumnBlock, columns - column);
                float* aBlock = a + product * aBatchStride + row * depth;
                float* bBlock = b + product * depth * columns + column;
                float* cBlock = c + (product * rows + row) * columns + column;
                for (long k = 0; k < depth; k += DepthBlock)
                    Brgemm.Multiply(height, width, Math.Min(DepthBlock, depth - k), depth, columns, columns, k > 0, aBlock + k, bBlock + k * columns, cBlock);
            }
        }
    }
}
