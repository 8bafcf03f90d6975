using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// A general float32 GEMM on <see cref="Brgemm"/>'s micro-kernel, for libtorch's own GEMM calls on AMD's CPUs
/// (<see cref="LibtorchGemm"/>): C (+)= A·B for row-major matrices, either operand stored transposed. Each thread takes a
/// share of C's columns (or, for narrow products, of its rows), copies its share of B into the layout the micro-kernel
/// reads, a block of depth at a time, and multiplies every block of rows by it; in the last block of depth a thread that
/// has finished its own rows takes another's that are left.
/// </summary>
/// <remarks>
/// Each output is the same sum of products as MKL's in another order of additions (blocks of at most
/// <see cref="DepthBlock"/> terms), so results agree to float32 rounding, not bit for bit.
/// </remarks>
internal static unsafe class GemmKernel
{
    private const long RowBlock = 64;      // rows of A per micro-kernel call
    private const long DepthBlock = 512;   // terms per micro-kernel call: 64 × 512 of A (128 KiB) stays in L2
    private const long ColumnBlock = 192;  // columns of B per micro-kernel call: 512 × 192 of B is 384 KiB
    private const long NarrowColumns = 64; // fewer columns a thread than this, and the threads share C's rows instead

    /// <summary>Whether this CPU and libtorch can run the kernel.</summary>
    public static bool IsSupported => Avx512F.IsSupported && Brgemm.IsAvailable;

    /// <summary>
    /// C (+)= A·B: A is <paramref name="m"/> × <paramref name="k"/> (stored <paramref name="k"/> × <paramref name="m"/>
    /// when <paramref name="aTransposed"/>), rows <paramref name="lda"/> apart; B is <paramref name="k"/> ×
    /// <paramref name="n"/> (stored <paramref name="n"/> × <paramref name="k"/> when <paramref name="bTransposed"/>), rows
    /// <paramref name="ldb"/> apart; C is <paramref name="m"/> × <paramref name="n"/>, rows <paramref name="ldc"/> apart,
    /// overwritten (and not read) unless <paramref name="accumulate"/>. Every buffer is allocated before C is written, so an
    /// allocation failure leaves C as it was.
    /// </summary>
    public static void Multiply(long m, long n, long k, float* a, long lda, bool aTransposed, float* b, long ldb, bool bTransposed,
        float* c, long ldc, bool accumulate, int threads = 0)
    {
        if (threads <= 0) threads = Math.Max(1, get_num_threads());
        // A transposed operand is copied once into the micro-kernel's layout. Computing Cᵀ = Bᵀ·Aᵀ instead copies the other
        // operands, plus C twice (out of a scratch buffer): far less when a wide operand is the transposed one, as in a
        // linear layer's weight gradient at few tokens (10240 × 1280 from 64 rows: 0.58× MKL's time against 2.0×).
        long direct = (aTransposed ? m * k : 0) + (bTransposed ? k * n : 0);
        long swapped = (bTransposed ? 0 : n * k) + (aTransposed ? 0 : m * k) + 2 * m * n;
        if (direct <= swapped)
        {
            Blocked(m, n, k, a, lda, aTransposed, b, ldb, bTransposed, c, ldc, accumulate, threads);
            return;
        }
        long ldt = RoundUp(m);
        float* transposed = Allocate(n * ldt);
        try
        {
            Blocked(n, m, k, b, ldb, !bTransposed, a, lda, !aTransposed, transposed, ldt, false, threads);
            int parts = (int)Math.Min(threads, m);
            var work = new IntoTransposed(transposed, ldt, c, ldc, m, n, accumulate, parts);
            KernelThreads.Run(parts, ref work);
        }
        finally
        {
            NativeMemory.AlignedFree(transposed);
        }
    }

    private static void Blocked(long m, long n, long k, float* a, long lda, bool aTransposed, float* b, long ldb, bool bTransposed,
        float* c, long ldc, bool accumulate, int threads)
    {
        bool byColumns = n >= NarrowColumns * threads;
        int parts = (int)Math.Max(1, Math.Min(threads, byColumns ? (n + 15) / 16 : m));
        long depthBlocks = (k + DepthBlock - 1) / DepthBlock, depth = (k + depthBlocks - 1) / depthBlocks;
        long width = byColumns ? ((n + 15) / 16 + parts - 1) / parts * 16 : RoundUp(n);
        var buffers = stackalloc float*[2 * parts];
        var claimed = stackalloc long[parts];
        var ready = stackalloc int[parts];
        try
        {
            for (int part = 0; part < parts; part++)
            {
                buffers[2 * part] = Allocate(depth * width);
                buffers[2 * part + 1] = aTransposed ? Allocate(RowBlock * depth) : null;
                claimed[part] = 0;
                ready[part] = 0;
            }
            var work = new Blocks(a, lda, aTransposed, b, ldb, bTransposed, c, ldc, accumulate, m, n, k, depth, byColumns, buffers,
                claimed, ready, parts);
            KernelThreads.Run(parts, ref work);
        }
        finally
        {
            for (int part = 0; part < parts; part++)
            {
                NativeMemory.AlignedFree(buffers[2 * part]);
                NativeMemory.AlignedFree(buffers[2 * part + 1]);
            }
        }
    }

    private static long RoundUp(long count) => (count + 15) / 16 * 16;

    private static float* Allocate(long floats) => KernelTensors.AllocateFloats(floats, "GEMM scratch buffer");

    /// <summary>How many blocks of rows one thread has multiplied for another in this process (<see cref="Blocks"/>).</summary>
    internal static long RowBlocksTaken => Interlocked.Read(ref s_rowBlocksTaken);

    private static long s_rowBlocksTaken;

    /// <summary>For tests: this part waits 20 ms after reaching the last block of depth, before multiplying its rows there.</summary>
    internal static int StalledPartForTests { get; set; } = -1;

    // One part's share of C: its rows and columns, and the panel its columns of B are copied into.
    private readonly record struct Share(long FirstRow, long Rows, long FirstColumn, long Columns, bool CopyB, long PanelStride, long PanelWidth)
    {
        public long RowBlocks => (Rows + RowBlock - 1) / RowBlock;
    }

    // One part's share of C (columns in groups of 16, or rows), depth block by depth block: its columns of B are copied
    // into a contiguous panel (transposed if B is stored so; read in place if B is not and one block of rows reads it),
    // then every block of rows (transposed first if A is stored so) is multiplied by the panel, 192 columns per call.
    // In the last block of depth a part claims its blocks of rows one at a time, and when it has none left it takes the
    // unclaimed ones of a part that has reached that block too, with that part's panel. Why: in the SD 1.5 training step
    // on an AMD EPYC Zen 4 the worker thread started its share ~40 µs after the calling thread (median) and ran ~4% slower
    // over the step, and the calling thread spent 0.1–0.25 s a step waiting for it; taking its last rows made the step
    // 2.5–4% faster (docs/performance.md, nineteenth session). A block is computed by the same calls whoever computes it,
    // so the result does not depend on which thread did.
    private readonly struct Blocks(float* a, long lda, bool aTransposed, float* b, long ldb, bool bTransposed, float* c, long ldc,
        bool accumulate, long m, long n, long k, long depth, bool byColumns, float** buffers, long* claimed, int* ready, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var own = ShareOf(part);
            if (own.Rows <= 0 || own.Columns <= 0) return;
            float* rowBlock = buffers[2 * part + 1];
            for (long p = 0; p < k; p += depth)
            {
                long terms = Math.Min(depth, k - p);
                bool add = accumulate || p > 0;
                float* panel = Panel(own, part, p);
                if (bTransposed)
                    Transposes.Transpose(b + own.FirstColumn * ldb + p, ldb, terms, own.Columns, panel, own.PanelStride);
                else if (own.CopyB)
                    for (long t = 0; t < terms; t++)
                        new ReadOnlySpan<float>(b + (p + t) * ldb + own.FirstColumn, (int)own.Columns).CopyTo(new Span<float>(panel + t * own.PanelStride, (int)own.Columns));
                if (p + depth < k)
                {
                    for (long block = 0; block < own.RowBlocks; block++) MultiplyRows(own, panel, block, p, terms, add, rowBlock);
                    continue;
                }
                Volatile.Write(ref ready[part], 1);
                if (part == StalledPartForTests) Thread.Sleep(20);
                for (int i = 0; i < parts; i++)
                {
                    int owner = (part + i) % parts;
                    if (i > 0 && Volatile.Read(ref ready[owner]) == 0) continue;
                    var share = i == 0 ? own : ShareOf(owner);
                    float* ownerPanel = i == 0 ? panel : Panel(share, owner, p);
                    long block;
                    while ((block = Interlocked.Increment(ref claimed[owner]) - 1) < share.RowBlocks)
                    {
                        MultiplyRows(share, ownerPanel, block, p, terms, add, rowBlock);
                        if (i > 0) Interlocked.Increment(ref s_rowBlocksTaken);
                    }
                }
            }
        }

        private Share ShareOf(int part)
        {
            long firstRow = 0, rows = m, firstColumn = 0, columns = n;
            if (byColumns)
            {
                var (group, groups) = KernelTensors.Share((n + 15) / 16, parts, part);
                firstColumn = group * 16;
                columns = Math.Min(groups * 16, n - firstColumn);
            }
            else
            {
                (firstRow, rows) = KernelTensors.Share(m, parts, part);
            }
            // A plain B is copied only when several blocks of rows read it: one block reads it once either way, and the
            // copy would cost as much again (a weight gradient's 1280 × 11520 at 8×8 is 59 MB).
            bool copyB = bTransposed || rows > RowBlock;
            long panels = Math.Max(1, (columns + ColumnBlock - 1) / ColumnBlock);
            return new Share(firstRow, rows, firstColumn, columns, copyB, copyB ? RoundUp(columns) : ldb, RoundUp((columns + panels - 1) / panels));
        }

        private float* Panel(Share share, int part, long p) => share.CopyB ? buffers[2 * part] : b + p * ldb + share.FirstColumn;

        // One block of rows of a share times its panel, 192 columns a call; A's block is transposed into `rowBlock` first if A is stored so.
        private void MultiplyRows(Share share, float* panel, long block, long p, long terms, bool add, float* rowBlock)
        {
            long row = share.FirstRow + block * RowBlock, height = Math.Min(RowBlock, share.FirstRow + share.Rows - row);
            float* aBlock;
            long aStride;
            if (aTransposed)
            {
                Transposes.Transpose(a + p * lda + row, lda, height, terms, rowBlock, terms);
                aBlock = rowBlock;
                aStride = terms;
            }
            else
            {
                aBlock = a + row * lda + p;
                aStride = lda;
            }
            for (long column = 0; column < share.Columns; column += share.PanelWidth)
                Brgemm.Multiply(height, Math.Min(share.PanelWidth, share.Columns - column), terms, aStride, share.PanelStride, ldc, add,
                    aBlock, panel + column, c + row * ldc + share.FirstColumn + column);
        }
    }

    // C[i][j] (+)= T[j][i], a share of C's rows per part.
    private readonly struct IntoTransposed(float* t, long ldt, float* c, long ldc, long m, long n, bool accumulate, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (first, rows) = KernelTensors.Share(m, parts, part);
            if (!accumulate)
            {
                Transposes.Transpose(t + first, ldt, rows, n, c + first * ldc, ldc);
                return;
            }
            for (long i = first; i < first + rows; i++)
            {
                float* target = c + i * ldc, source = t + i;
                for (long j = 0; j < n; j++) target[j] += source[j * ldt];
            }
        }
    }
}
