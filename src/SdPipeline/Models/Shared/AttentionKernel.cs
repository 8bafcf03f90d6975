using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Softmax attention for float32 CPU tensors in inference, on AVX-512, for long sequences. libtorch's CPU flash kernel
/// runs SD 1.5's 64×64 self-attention (4096 tokens, heads 40 wide) at about half this CPU's matrix rate: its GEMMs of
/// depth 40 spend much of their time packing operands. Here each work item attends a block of 32 queries held along
/// the vector lanes, one chunk of 288 keys at a time: the chunk's scores stay in the first-level cache, the softmax runs
/// down the columns (maximum and sum are lane-wise, no horizontal reductions), and both products are register-blocked
/// FMA loops over keys and values reordered once per head.
/// </summary>
/// <remarks>
/// The arithmetic is libtorch's flash kernel's (scores scaled by 1/√d, the running maximum subtracted before the
/// exponential and earlier chunks rescaled when it rises, the weighted sum divided by the sum of the weights at the
/// end), in float32 with another order of additions and the exponential taken in base 2, so results agree with
/// <c>scaled_dot_product_attention</c> to float32 rounding, not bit for bit.
/// </remarks>
internal static unsafe partial class AttentionKernel
{
    private const int QueryBlock = 32;   // queries per work item: two 16-lane vectors
    private const int KeyBlock = 12;     // keys per register tile of the score product: 12 × 2 accumulators
    // Keys per chunk (a multiple of KeyBlock): the chunk's scores (36 KiB) stay in the first-level cache. Sums over
    // keys are also formed per chunk and then added, so rounding grows with the chunk, not the sequence (libtorch's
    // kernel sums blocks of 512 keys likewise).
    private const int KeyChunk = 24 * KeyBlock;

    /// <summary>Whether this CPU can run the kernel.</summary>
    public static bool IsSupported => Avx512F.IsSupported;

    /// <summary>
    /// Whether the kernel serves these projections ([B, N, H·D], [B, M, H·D]): float32 on the CPU, no gradient to
    /// record, and a sequence long enough that it beats libtorch's kernel. Measured on an Intel Xeon (family 6, model
    /// 207; docs/performance.md): 0.77× libtorch's time at 4096 keys 40 wide (SD 1.5's 64×64 level), 0.87× at 4096 keys
    /// 64 wide (SDXL), but 1.16× at 1024 keys (the per-head reordering and per-block transposes are not amortised) and
    /// 1.04× for the VAE's single 512-wide head, whose long per-dimension sums also round more than libtorch's GEMMs.
    /// </summary>
    public static bool Applies(Tensor query, Tensor key, Tensor value, long heads) =>
        Shaped(query, key, value, heads) && key.shape[1] >= MinKeys && Plain(query) && Plain(key) && Plain(value);

    // What the kernel asks of the shapes: [B, N, H·D] queries, [B, M, H·D] keys and values, heads at most MaxHeadDim wide.
    private static bool Shaped(Tensor query, Tensor key, Tensor value, long heads)
    {
        if (!IsSupported || query.dim() != 3 || key.dim() != 3 || value.dim() != 3) return false;
        long width = query.shape[2];
        if (heads <= 0 || width % heads != 0 || width / heads > MaxHeadDim) return false;
        if (key.shape[2] != width || value.shape[2] != width || value.shape[1] != key.shape[1]
            || key.shape[0] != query.shape[0] || value.shape[0] != query.shape[0]) return false;
        return true;
    }

    private const long MinKeys = 2048;
    private const long MaxHeadDim = 64;

    // A contiguous tensor the kernel can address and that no autograd graph needs.
    private static bool Plain(Tensor tensor) => KernelTensors.Addressable(tensor) && tensor.is_contiguous() && !tensor.requires_grad;

    /// <summary>
    /// Attends <paramref name="query"/> [B, N, H·D] to <paramref name="key"/> and <paramref name="value"/> [B, M, H·D]
    /// (contiguous float32 CPU tensors, heads side by side in the last dimension as the projections make them) and
    /// returns [B, N, H·D] in the same layout.
    /// </summary>
    public static Tensor Attend(Tensor query, Tensor key, Tensor value, long heads)
    {
        var output = empty(query.shape, ScalarType.Float32);
        Attend(query, key, value, heads, output, null);
        return output;
    }

    // Writes the attended values into `output`, and where `logSumExp` is not null, each query's 2-based log of its
    // weights' sum in the kernel's units (scale·max + log₂ sum, scale including log₂e) at [b, h, n]: what backward needs
    // to form the weights again.
    private static void Attend(Tensor query, Tensor key, Tensor value, long heads, Tensor output, float* logSumExp)
    {
        long batch = query.shape[0], queries = query.shape[1], keys = key.shape[1], width = query.shape[2];
        int headDim = checked((int)(width / heads));
        var shape = new Shape(checked((int)batch), checked((int)heads), checked((int)queries), checked((int)keys), headDim);
        float scale = (float)(Math.Log2(Math.E) / Math.Sqrt(headDim)); // e^(x/√d) = 2^(x·log₂e/√d)

        int keyBlocks = (shape.Keys + KeyBlock - 1) / KeyBlock;
        long packedPerHead = (long)keyBlocks * KeyBlock * headDim;
        long valuesPerHead = (long)shape.Keys * headDim;
        float* packedKeys = (float*)NativeMemory.AlignedAlloc((nuint)(packedPerHead * shape.Batch * shape.Heads * sizeof(float)), 64);
        float* packedValues = (float*)NativeMemory.AlignedAlloc((nuint)(valuesPerHead * shape.Batch * shape.Heads * sizeof(float)), 64);
        try
        {
            float* q = KernelTensors.Address(query), k = KernelTensors.Address(key), v = KernelTensors.Address(value), o = KernelTensors.Address(output);
            int threads = Math.Max(1, get_num_threads());
            var packing = new Packing(k, v, packedKeys, packedValues, packedPerHead, valuesPerHead, shape, threads);
            KernelThreads.Run(threads, ref packing);

            int queryBlocks = (shape.Queries + QueryBlock - 1) / QueryBlock;
            int next = -1;
            var blocks = new QueryBlocks(q, packedKeys, packedValues, o, logSumExp, packedPerHead, valuesPerHead, shape, queryBlocks, scale, &next);
            KernelThreads.Run(threads, ref blocks);
        }
        finally
        {
            NativeMemory.AlignedFree(packedKeys);
            NativeMemory.AlignedFree(packedValues);
        }
    }

    private readonly record struct Shape(int Batch, int Heads, int Queries, int Keys, int HeadDim)
    {
        public int Width => Heads * HeadDim;
    }

    // Every (sample, head)'s keys and values reordered, shared among the parts.
    private readonly struct Packing(float* k, float* v, float* packedKeys, float* packedValues, long packedPerHead, long valuesPerHead, Shape shape, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (first, count) = KernelTensors.Share(shape.Batch * shape.Heads, parts, part);
            for (long bh = first; bh < first + count; bh++)
            {
                PackKeys(k, packedKeys + bh * packedPerHead, shape, (int)(bh / shape.Heads), (int)(bh % shape.Heads));
                PackValues(v, packedValues + bh * valuesPerHead, shape, (int)(bh / shape.Heads), (int)(bh % shape.Heads));
            }
        }
    }

    // The query blocks of every (sample, head), taken by the parts one at a time from the counter `next`.
    private readonly struct QueryBlocks(float* q, float* packedKeys, float* packedValues, float* o, float* logSumExp, long packedPerHead, long valuesPerHead,
        Shape shape, int queryBlocks, float scale, int* next) : IPartitionedWork
    {
        public void Run(int part)
        {
            int items = shape.Batch * shape.Heads * queryBlocks;
            var scratch = new Scratch(shape.HeadDim);
            try
            {
                for (int item = Interlocked.Increment(ref *next); item < items; item = Interlocked.Increment(ref *next))
                {
                    int bh = item / queryBlocks, block = item % queryBlocks;
                    AttendBlock(q, packedKeys + bh * packedPerHead, packedValues + bh * valuesPerHead, o,
                        logSumExp == null ? null : logSumExp + (long)bh * shape.Queries, shape,
                        bh / shape.Heads, bh % shape.Heads, block * QueryBlock, scale, scratch);
                }
            }
            finally { scratch.Free(); }
        }
    }

    /// <summary>Per-thread buffers: the transposed query block, one chunk's scores, the transposed output.</summary>
    private readonly struct Scratch(int headDim)
    {
        public readonly float* QueryT = Alloc(headDim * QueryBlock);
        public readonly float* Scores = Alloc(KeyChunk * QueryBlock);
        public readonly float* OutputT = Alloc(headDim * QueryBlock);

        private static float* Alloc(int floats) => (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);

        public void Free()
        {
            NativeMemory.AlignedFree(QueryT);
            NativeMemory.AlignedFree(Scores);
            NativeMemory.AlignedFree(OutputT);
        }
    }

    // Keys of one head as blocks of 12, each block dimension-major: the score tile broadcasts 12 keys' values of one
    // dimension from one cache line and a half at constant offsets. The last block is padded with zeros.
    private static void PackKeys(float* k, float* packed, Shape s, int b, int h)
    {
        float** rows = stackalloc float*[KeyBlock];
        for (int m0 = 0; m0 < s.Keys; m0 += KeyBlock)
        {
            float* block = packed + (long)m0 * s.HeadDim;
            int count = Math.Min(KeyBlock, s.Keys - m0);
            for (int r = 0; r < count; r++) rows[r] = k + ((long)b * s.Keys + m0 + r) * s.Width + (long)h * s.HeadDim;
            if (count == KeyBlock)
            {
                for (int d = 0; d < s.HeadDim; d++, block += KeyBlock)
                    for (int r = 0; r < KeyBlock; r++) block[r] = rows[r][d];
            }
            else
            {
                for (int d = 0; d < s.HeadDim; d++, block += KeyBlock)
                    for (int r = 0; r < KeyBlock; r++) block[r] = r < count ? rows[r][d] : 0f;
            }
        }
    }

    // Values of one head cut into groups of dimensions (see GroupWidth), each group key-major: the weighted sum of a
    // group reads its keys' values sequentially.
    private static void PackValues(float* v, float* packed, Shape s, int b, int h)
    {
        for (int m = 0; m < s.Keys; m++)
        {
            float* row = v + ((long)b * s.Keys + m) * s.Width + (long)h * s.HeadDim;
            for (int i0 = 0; i0 < s.HeadDim;)
            {
                int g = GroupWidth(s.HeadDim - i0);
                Buffer.MemoryCopy(row + i0, packed + (long)i0 * s.Keys + (long)m * g, g * sizeof(float), g * sizeof(float));
                i0 += g;
            }
        }
    }

    // Eight dimensions × two query vectors fill 16 accumulators; a width that is not a multiple of eight (none of
    // Stable Diffusion's) ends in single dimensions. Groups of ten measured the same at width 40 and round identically.
    private static int GroupWidth(int remaining) => remaining >= 8 ? 8 : 1;

    private static void AttendBlock(float* q, float* packedKeys, float* packedValues, float* o, float* logSumExp, Shape s, int b, int h,
        int q0, float scale, in Scratch scratch)
    {
        int count = Math.Min(QueryBlock, s.Queries - q0);
        int d = s.HeadDim;

        // Rows past the end of the sequence repeat the last query, so that every lane holds finite values.
        float* qt = scratch.QueryT;
        for (int j = 0; j < QueryBlock; j++)
        {
            float* row = q + ((long)b * s.Queries + q0 + Math.Min(j, count - 1)) * s.Width + (long)h * d;
            for (int i = 0; i < d; i++) qt[i * QueryBlock + j] = row[i];
        }

        // Keys in chunks whose scores stay in the first-level cache; the running maximum, sum and weighted sum are
        // rescaled when a chunk raises the maximum, as in libtorch's flash kernel.
        float* scores = scratch.Scores;
        float* ot = scratch.OutputT;
        var scaleVector = Vector512.Create(scale);
        Vector512<float> max0 = default, max1 = default, sum0 = default, sum1 = default;
        for (int m0 = 0; m0 < s.Keys; m0 += KeyChunk)
        {
            int n = Math.Min(KeyChunk, s.Keys - m0);
            var (chunkMax0, chunkMax1) = Scores(qt, packedKeys + (long)m0 * d, scores, n, d);
            if (m0 == 0)
            {
                (max0, max1) = (chunkMax0, chunkMax1);
            }
            else
            {
                var raised0 = Avx512F.Max(max0, chunkMax0);
                var raised1 = Avx512F.Max(max1, chunkMax1);
                if (raised0 != max0 || raised1 != max1)
                {
                    var factor0 = Exp2((max0 - raised0) * scaleVector);
                    var factor1 = Exp2((max1 - raised1) * scaleVector);
                    sum0 *= factor0;
                    sum1 *= factor1;
                    ScaleRows(ot, d, factor0, factor1);
                    (max0, max1) = (raised0, raised1);
                }
            }
            var (chunkSum0, chunkSum1) = Exponentials(scores, n, max0, max1, scaleVector);
            sum0 += chunkSum0;
            sum1 += chunkSum1;

            bool first = m0 == 0;
            for (int i0 = 0; i0 < d;)
            {
                int g = GroupWidth(d - i0);
                float* values = packedValues + (long)i0 * s.Keys + (long)m0 * g;
                float* target = ot + i0 * QueryBlock;
                if (g == 8) WeightedSum8(scores, values, n, target, first);
                else WeightedSum1(scores, values, n, target, first);
                i0 += g;
            }
        }

        ScaleRows(ot, d, Vector512<float>.One / sum0, Vector512<float>.One / sum1);
        if (logSumExp != null)
            for (int j = 0; j < count; j++)
            {
                float max = j < 16 ? max0.GetElement(j) : max1.GetElement(j - 16);
                float sum = j < 16 ? sum0.GetElement(j) : sum1.GetElement(j - 16);
                logSumExp[q0 + j] = max * scale + MathF.Log2(sum);
            }
        StoreBlock(ot, o, s, b, h, q0, count);
    }

    // A block held transposed ([d][32]: dimension-major, queries along the lanes) written back as the block's `count` rows
    // of head h in `rows` [B, N, H·D].
    private static void StoreBlock(float* transposed, float* rows, Shape s, int b, int h, int q0, int count)
    {
        for (int j = 0; j < count; j++)
        {
            float* row = rows + ((long)b * s.Queries + q0 + j) * s.Width + (long)h * s.HeadDim;
            for (int i = 0; i < s.HeadDim; i++) row[i] = transposed[i * QueryBlock + j];
        }
    }

    // outputT[i][j] *= factor[j] for every dimension i.
    private static void ScaleRows(float* outputT, int d, Vector512<float> factor0, Vector512<float> factor1)
    {
        for (int i = 0; i < d; i++)
        {
            float* row = outputT + i * QueryBlock;
            (Vector512.Load(row) * factor0).Store(row);
            (Vector512.Load(row + 16) * factor1).Store(row + 16);
        }
    }

    // scores[m][j] = Σ_i keys[m][i] · queryT[i][j], unscaled; returns the lane-wise maximum over the real keys.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (Vector512<float>, Vector512<float>) Scores(float* qt, float* packedKeys, float* scores, int keys, int d)
    {
        var max0 = Vector512.Create(float.NegativeInfinity);
        var max1 = max0;
        for (int m0 = 0; m0 < keys; m0 += KeyBlock)
        {
            float* kp = packedKeys + (long)m0 * d;
            float* qp = qt;
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default,
                a3 = default, b3 = default, a4 = default, b4 = default, a5 = default, b5 = default,
                a6 = default, b6 = default, a7 = default, b7 = default, a8 = default, b8 = default,
                a9 = default, b9 = default, a10 = default, b10 = default, a11 = default, b11 = default;
            for (int i = 0; i < d; i++)
            {
                var x = Vector512.Load(qp);
                var y = Vector512.Load(qp + 16);
                Vector512<float> w;
                w = Vector512.Create(kp[0]); a0 = Avx512F.FusedMultiplyAdd(x, w, a0); b0 = Avx512F.FusedMultiplyAdd(y, w, b0);
                w = Vector512.Create(kp[1]); a1 = Avx512F.FusedMultiplyAdd(x, w, a1); b1 = Avx512F.FusedMultiplyAdd(y, w, b1);
                w = Vector512.Create(kp[2]); a2 = Avx512F.FusedMultiplyAdd(x, w, a2); b2 = Avx512F.FusedMultiplyAdd(y, w, b2);
                w = Vector512.Create(kp[3]); a3 = Avx512F.FusedMultiplyAdd(x, w, a3); b3 = Avx512F.FusedMultiplyAdd(y, w, b3);
                w = Vector512.Create(kp[4]); a4 = Avx512F.FusedMultiplyAdd(x, w, a4); b4 = Avx512F.FusedMultiplyAdd(y, w, b4);
                w = Vector512.Create(kp[5]); a5 = Avx512F.FusedMultiplyAdd(x, w, a5); b5 = Avx512F.FusedMultiplyAdd(y, w, b5);
                w = Vector512.Create(kp[6]); a6 = Avx512F.FusedMultiplyAdd(x, w, a6); b6 = Avx512F.FusedMultiplyAdd(y, w, b6);
                w = Vector512.Create(kp[7]); a7 = Avx512F.FusedMultiplyAdd(x, w, a7); b7 = Avx512F.FusedMultiplyAdd(y, w, b7);
                w = Vector512.Create(kp[8]); a8 = Avx512F.FusedMultiplyAdd(x, w, a8); b8 = Avx512F.FusedMultiplyAdd(y, w, b8);
                w = Vector512.Create(kp[9]); a9 = Avx512F.FusedMultiplyAdd(x, w, a9); b9 = Avx512F.FusedMultiplyAdd(y, w, b9);
                w = Vector512.Create(kp[10]); a10 = Avx512F.FusedMultiplyAdd(x, w, a10); b10 = Avx512F.FusedMultiplyAdd(y, w, b10);
                w = Vector512.Create(kp[11]); a11 = Avx512F.FusedMultiplyAdd(x, w, a11); b11 = Avx512F.FusedMultiplyAdd(y, w, b11);
                qp += QueryBlock;
                kp += KeyBlock;
            }
            float* sp = scores + (long)m0 * QueryBlock;
            int rows = Math.Min(KeyBlock, keys - m0);
            Row(sp, 0, rows, a0, b0, ref max0, ref max1); Row(sp, 1, rows, a1, b1, ref max0, ref max1);
            Row(sp, 2, rows, a2, b2, ref max0, ref max1); Row(sp, 3, rows, a3, b3, ref max0, ref max1);
            Row(sp, 4, rows, a4, b4, ref max0, ref max1); Row(sp, 5, rows, a5, b5, ref max0, ref max1);
            Row(sp, 6, rows, a6, b6, ref max0, ref max1); Row(sp, 7, rows, a7, b7, ref max0, ref max1);
            Row(sp, 8, rows, a8, b8, ref max0, ref max1); Row(sp, 9, rows, a9, b9, ref max0, ref max1);
            Row(sp, 10, rows, a10, b10, ref max0, ref max1); Row(sp, 11, rows, a11, b11, ref max0, ref max1);
        }
        return (max0, max1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(float* scores, int r, int rows, Vector512<float> a, Vector512<float> b,
        ref Vector512<float> max0, ref Vector512<float> max1)
    {
        if (r >= rows) return;
        a.Store(scores + r * QueryBlock);
        b.Store(scores + r * QueryBlock + 16);
        max0 = Avx512F.Max(max0, a);
        max1 = Avx512F.Max(max1, b);
    }

    // weights[m][j] = 2^(scale·scores[m][j] − scale·max[j]) in place (scale includes log₂e); returns the lane-wise sums.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (Vector512<float>, Vector512<float>) Exponentials(float* scores, int keys, Vector512<float> max0,
        Vector512<float> max1, Vector512<float> scale)
    {
        var shift0 = -(max0 * scale);
        var shift1 = -(max1 * scale);
        Vector512<float> sum0 = default, sum1 = default;
        for (int m = 0; m < keys; m++)
        {
            float* p = scores + (long)m * QueryBlock;
            var e0 = Exp2(Avx512F.FusedMultiplyAdd(Vector512.Load(p), scale, shift0));
            var e1 = Exp2(Avx512F.FusedMultiplyAdd(Vector512.Load(p + 16), scale, shift1));
            e0.Store(p);
            e1.Store(p + 16);
            sum0 += e0;
            sum1 += e1;
        }
        return (sum0, sum1);
    }

    // 2^t for t ≤ 0 to about 2 ulp: t = n + r with n an integer and |r| ≤ ½ (exact), Cephes' minimax polynomial for
    // 2^r, and 2^n applied by VSCALEFPS, which underflows gracefully to zero. Working in base 2 folds log₂e into the
    // scores' scale, saving the argument reduction's two multiplications by ln 2.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Exp2(Vector512<float> t)
    {
        t = Avx512F.Max(Vector512.Create(-150f), t); // this operand order keeps a NaN a NaN
        var n = Avx512F.RoundScale(t, 0);
        var r = t - n;
        var p = Vector512.Create(1.535336188319500e-4f);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1.339887440266574e-3f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(9.618437357674640e-3f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(5.550332471162809e-2f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(2.402264791363012e-1f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(6.931472028550421e-1f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512<float>.One);
        return Avx512F.Scale(p, n);
    }

    // outputT[i][j] = Σ_m values[m][i] · weights[m][j] for eight dimensions i.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedSum8(float* weights, float* values, int keys, float* outputT, bool first)
    {
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default,
            a3 = default, b3 = default, a4 = default, b4 = default, a5 = default, b5 = default,
            a6 = default, b6 = default, a7 = default, b7 = default;
        float* vp = values;
        float* wp = weights;
        for (int m = 0; m < keys; m++)
        {
            var x = Vector512.Load(wp);
            var y = Vector512.Load(wp + 16);
            Vector512<float> w;
            w = Vector512.Create(vp[0]); a0 = Avx512F.FusedMultiplyAdd(x, w, a0); b0 = Avx512F.FusedMultiplyAdd(y, w, b0);
            w = Vector512.Create(vp[1]); a1 = Avx512F.FusedMultiplyAdd(x, w, a1); b1 = Avx512F.FusedMultiplyAdd(y, w, b1);
            w = Vector512.Create(vp[2]); a2 = Avx512F.FusedMultiplyAdd(x, w, a2); b2 = Avx512F.FusedMultiplyAdd(y, w, b2);
            w = Vector512.Create(vp[3]); a3 = Avx512F.FusedMultiplyAdd(x, w, a3); b3 = Avx512F.FusedMultiplyAdd(y, w, b3);
            w = Vector512.Create(vp[4]); a4 = Avx512F.FusedMultiplyAdd(x, w, a4); b4 = Avx512F.FusedMultiplyAdd(y, w, b4);
            w = Vector512.Create(vp[5]); a5 = Avx512F.FusedMultiplyAdd(x, w, a5); b5 = Avx512F.FusedMultiplyAdd(y, w, b5);
            w = Vector512.Create(vp[6]); a6 = Avx512F.FusedMultiplyAdd(x, w, a6); b6 = Avx512F.FusedMultiplyAdd(y, w, b6);
            w = Vector512.Create(vp[7]); a7 = Avx512F.FusedMultiplyAdd(x, w, a7); b7 = Avx512F.FusedMultiplyAdd(y, w, b7);
            vp += 8;
            wp += QueryBlock;
        }
        Store(outputT, 0, a0, b0, first); Store(outputT, 1, a1, b1, first); Store(outputT, 2, a2, b2, first);
        Store(outputT, 3, a3, b3, first); Store(outputT, 4, a4, b4, first); Store(outputT, 5, a5, b5, first);
        Store(outputT, 6, a6, b6, first); Store(outputT, 7, a7, b7, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightedSum1(float* weights, float* values, int keys, float* outputT, bool first)
    {
        Vector512<float> a = default, b = default;
        float* vp = values;
        float* wp = weights;
        for (int m = 0; m < keys; m++)
        {
            var w = Vector512.Create(vp[0]);
            a = Avx512F.FusedMultiplyAdd(Vector512.Load(wp), w, a);
            b = Avx512F.FusedMultiplyAdd(Vector512.Load(wp + 16), w, b);
            vp += 1;
            wp += QueryBlock;
        }
        Store(outputT, 0, a, b, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* outputT, int i, Vector512<float> a, Vector512<float> b, bool first)
    {
        float* p = outputT + i * QueryBlock;
        if (!first)
        {
            a += Vector512.Load(p);
            b += Vector512.Load(p + 16);
        }
        a.Store(p);
        b.Store(p + 16);
    }
}
