using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// The kernel's forward for training (the attended values and each query's log-sum of weights) and its backward, for
/// <see cref="AttentionFunction"/>. Backward is flash attention's: the weights are formed again chunk by chunk from the
/// scores and the saved log-sums, never held whole. Each part takes one (sample, head) at a time and runs its key chunks
/// in turn; for each chunk every block of 32 queries forms its weights P and their gradient dS = P ⊙ (dO·Vᵀ − rowsum(dO ⊙ O))
/// in the first-level cache, adds dS·K into the queries' gradient (held transposed, as the forward holds its output) and
/// Pᵀ·dO and dSᵀ·Q into the chunk's value and key gradients, which stay in the second-level cache until the chunk is done.
/// </summary>
internal static unsafe partial class AttentionKernel
{
    /// <summary>
    /// Whether <see cref="AttentionFunction"/> serves these projections in training: float32 CPU tensors in the layout
    /// <see cref="Applies"/> asks for (gradients allowed), under AMD's rules (<see cref="InferenceKernels.AmdRules"/>): AMD's CPUs, the only ones it was measured on. Forward and
    /// backward against <c>scaled_dot_product_attention</c> with its products on brgemm (<see cref="LibtorchGemm"/>), AMD
    /// EPYC Zen 4, batch 1, one process, medians of six interleaved (docs/performance.md): heads 40 wide (SD 1.5's
    /// widest level) 0.79× libtorch's time at 512 tokens, 0.62–0.67× at 1024, 0.66× at 2048, 0.68× at 4096; heads 64 wide
    /// 1.02× at 1024 and 0.76× at 4096; heads 80 wide 1.18× at 256. So: heads up to 40 wide from 512 keys, up to 64
    /// from 4096.
    /// </summary>
    public static bool AppliesToTraining(Tensor query, Tensor key, Tensor value, long heads)
    {
        if (!InferenceKernels.AmdRules || !Shaped(query, key, value, heads)) return false;
        long headDim = query.shape[2] / heads, keys = key.shape[1];
        bool wins = (headDim <= 40 && keys >= 512) || (headDim <= MaxHeadDim && keys >= 4096);
        return wins && Dense(query) && Dense(key) && Dense(value);
    }

    private static bool Dense(Tensor tensor) => KernelTensors.Addressable(tensor) && tensor.is_contiguous();

    /// <summary>
    /// The attended values [B, N, H·D] and, for <see cref="Backward"/>, each query's log-sum of weights [B, H, N] (in the
    /// kernel's base-2 units).
    /// </summary>
    public static (Tensor Output, Tensor LogSumExp) AttendForTraining(Tensor query, Tensor key, Tensor value, long heads)
    {
        var output = empty(query.shape, ScalarType.Float32);
        var logSumExp = empty([query.shape[0], heads, query.shape[1]], ScalarType.Float32);
        Attend(query, key, value, heads, output, KernelTensors.Address(logSumExp));
        return (output, logSumExp);
    }

    /// <summary>
    /// The gradients of <paramref name="query"/>, <paramref name="key"/> and <paramref name="value"/> given the gradient
    /// of the output, from the forward's <paramref name="output"/> and <paramref name="logSumExp"/>
    /// (<see cref="AttendForTraining"/>); every tensor contiguous float32 in the projections' layout.
    /// </summary>
    public static (Tensor Query, Tensor Key, Tensor Value) Backward(Tensor query, Tensor key, Tensor value, Tensor output,
        Tensor logSumExp, Tensor gradOutput, long heads)
    {
        long width = query.shape[2];
        int headDim = checked((int)(width / heads));
        var shape = new Shape(checked((int)query.shape[0]), checked((int)heads), checked((int)query.shape[1]), checked((int)key.shape[1]), headDim);
        var gradQuery = empty(query.shape, ScalarType.Float32);
        var gradKey = empty(key.shape, ScalarType.Float32);
        var gradValue = empty(value.shape, ScalarType.Float32);
        var pointers = new BackwardTensors(KernelTensors.Address(query), KernelTensors.Address(key), KernelTensors.Address(value),
            KernelTensors.Address(output), KernelTensors.Address(logSumExp), KernelTensors.Address(gradOutput),
            KernelTensors.Address(gradQuery), KernelTensors.Address(gradKey), KernelTensors.Address(gradValue));
        float scale = (float)(Math.Log2(Math.E) / Math.Sqrt(headDim));
        int threads = (int)Math.Min(Math.Max(1, get_num_threads()), (long)shape.Batch * shape.Heads);
        int next = -1;
        var work = new BackwardHeads(pointers, shape, scale, (float)(1 / Math.Sqrt(headDim)), &next);
        KernelThreads.Run(threads, ref work);
        return (gradQuery, gradKey, gradValue);
    }

    private readonly struct BackwardTensors(float* q, float* k, float* v, float* o, float* logSumExp, float* gradO,
        float* gradQ, float* gradK, float* gradV)
    {
        public readonly float* Q = q, K = k, V = v, O = o, LogSumExp = logSumExp, GradO = gradO, GradQ = gradQ, GradK = gradK, GradV = gradV;
    }

    // The (sample, head) pairs, taken by the parts one at a time from the counter `next`.
    private readonly struct BackwardHeads(BackwardTensors t, Shape shape, float scale, float gradientScale, int* next) : IPartitionedWork
    {
        public void Run(int part)
        {
            var scratch = new BackwardScratch(shape);
            try
            {
                for (int bh = Interlocked.Increment(ref *next); bh < shape.Batch * shape.Heads; bh = Interlocked.Increment(ref *next))
                    BackwardHead(t, shape, bh / shape.Heads, bh % shape.Heads, scale, gradientScale, scratch);
            }
            finally { scratch.Free(); }
        }
    }

    /// <summary>One part's buffers for one (sample, head) at a time.</summary>
    private readonly struct BackwardScratch
    {
        public readonly int Blocks;       // blocks of 32 queries
        public readonly int PaddedDim;    // the head's width rounded up to whole vectors
        public readonly float* KeysAsKeys, ValuesAsKeys, KeysAsValues; // the score products' and dQ's layouts
        public readonly float* QueryT, GradOutputT, GradQueryT;         // per block [d][32]
        public readonly float* QueryRows, GradOutputRows;               // per block [32][PaddedDim], padding zero
        public readonly float* LogSums, Deltas;                         // per block [32]
        public readonly float* Weights, WeightGradients;                // one chunk's P and dS, [keys][32]
        public readonly float* KeyGrad, ValueGrad;                      // one chunk's dK and dV, [keys][PaddedDim]

        public BackwardScratch(Shape s)
        {
            Blocks = (s.Queries + QueryBlock - 1) / QueryBlock;
            PaddedDim = (s.HeadDim + 15) / 16 * 16;
            long packed = (long)(s.Keys + KeyBlock - 1) / KeyBlock * KeyBlock * s.HeadDim;
            long transposed = (long)Blocks * QueryBlock * s.HeadDim, rows = (long)Blocks * QueryBlock * PaddedDim;
            KeysAsKeys = Alloc(packed);
            ValuesAsKeys = Alloc(packed);
            KeysAsValues = Alloc((long)s.Keys * s.HeadDim);
            QueryT = Alloc(transposed);
            GradOutputT = Alloc(transposed);
            GradQueryT = Alloc(transposed);
            QueryRows = Alloc(rows);
            GradOutputRows = Alloc(rows);
            LogSums = Alloc((long)Blocks * QueryBlock);
            Deltas = Alloc((long)Blocks * QueryBlock);
            Weights = Alloc(KeyChunk * QueryBlock);
            WeightGradients = Alloc(KeyChunk * QueryBlock);
            KeyGrad = Alloc((long)KeyChunk * PaddedDim);
            ValueGrad = Alloc((long)KeyChunk * PaddedDim);
        }

        private static float* Alloc(long floats) => KernelTensors.AllocateFloats(floats, "attention backward scratch buffer");

        public void Free()
        {
            foreach (var buffer in new[] { (nint)KeysAsKeys, (nint)ValuesAsKeys, (nint)KeysAsValues, (nint)QueryT, (nint)GradOutputT,
                (nint)GradQueryT, (nint)QueryRows, (nint)GradOutputRows, (nint)LogSums, (nint)Deltas, (nint)Weights,
                (nint)WeightGradients, (nint)KeyGrad, (nint)ValueGrad })
                NativeMemory.AlignedFree((void*)buffer);
        }
    }

    private static void BackwardHead(BackwardTensors t, Shape s, int b, int h, float scale, float gradientScale, in BackwardScratch x)
    {
        int d = s.HeadDim, dp = x.PaddedDim;
        PackKeys(t.K, x.KeysAsKeys, s, b, h);
        PackKeys(t.V, x.ValuesAsKeys, s, b, h);
        PackValues(t.K, x.KeysAsValues, s, b, h);
        float* logSums = t.LogSumExp + ((long)b * s.Heads + h) * s.Queries;
        for (int block = 0; block < x.Blocks; block++) PrepareBlock(t, s, b, h, block, logSums, x);

        for (int m0 = 0; m0 < s.Keys; m0 += KeyChunk)
        {
            int n = Math.Min(KeyChunk, s.Keys - m0);
            new Span<float>(x.KeyGrad, n * dp).Clear();
            new Span<float>(x.ValueGrad, n * dp).Clear();
            for (int block = 0; block < x.Blocks; block++)
            {
                long transposedAt = (long)block * d * QueryBlock, rowsAt = (long)block * QueryBlock * dp;
                float* lse = x.LogSums + block * QueryBlock, delta = x.Deltas + block * QueryBlock;
                Scores(x.QueryT + transposedAt, x.KeysAsKeys + (long)m0 * d, x.Weights, n, d);
                Weights(x.Weights, n, Vector512.Load(lse), Vector512.Load(lse + 16), Vector512.Create(scale));
                Scores(x.GradOutputT + transposedAt, x.ValuesAsKeys + (long)m0 * d, x.WeightGradients, n, d);
                WeightGradients(x.Weights, x.WeightGradients, n, Vector512.Load(delta), Vector512.Load(delta + 16), Vector512.Create(gradientScale));
                for (int i0 = 0; i0 < d;)
                {
                    int g = GroupWidth(d - i0);
                    float* keys = x.KeysAsValues + (long)i0 * s.Keys + (long)m0 * g;
                    float* target = x.GradQueryT + transposedAt + i0 * QueryBlock;
                    if (g == 8) WeightedSum8(x.WeightGradients, keys, n, target, m0 == 0);
                    else WeightedSum1(x.WeightGradients, keys, n, target, m0 == 0);
                    i0 += g;
                }
                KeyRows(x.Weights, x.GradOutputRows + rowsAt, x.ValueGrad, n, dp);
                KeyRows(x.WeightGradients, x.QueryRows + rowsAt, x.KeyGrad, n, dp);
            }
            for (int m = 0; m < n; m++)
            {
                long at = ((long)b * s.Keys + m0 + m) * s.Width + (long)h * d;
                new ReadOnlySpan<float>(x.KeyGrad + (long)m * dp, d).CopyTo(new Span<float>(t.GradK + at, d));
                new ReadOnlySpan<float>(x.ValueGrad + (long)m * dp, d).CopyTo(new Span<float>(t.GradV + at, d));
            }
        }

        for (int block = 0; block < x.Blocks; block++)
        {
            int q0 = block * QueryBlock;
            StoreBlock(x.GradQueryT + (long)block * d * QueryBlock, t.GradQ, s, b, h, q0, Math.Min(QueryBlock, s.Queries - q0));
        }
    }

    // One block's queries and output gradients, transposed (lanes) and as rows, its log-sums and its Δ = rowsum(dO ⊙ O).
    // Lanes past the end of the sequence repeat the last query and log-sum (finite weights) with a zero output gradient
    // and Δ, so their weights' gradients are zero and they add nothing to the keys' and values' gradients.
    private static void PrepareBlock(BackwardTensors t, Shape s, int b, int h, int block, float* logSums, in BackwardScratch x)
    {
        int d = s.HeadDim, dp = x.PaddedDim, q0 = block * QueryBlock, count = Math.Min(QueryBlock, s.Queries - q0);
        float* qt = x.QueryT + (long)block * d * QueryBlock, gt = x.GradOutputT + (long)block * d * QueryBlock;
        float* qr = x.QueryRows + (long)block * QueryBlock * dp, gr = x.GradOutputRows + (long)block * QueryBlock * dp;
        new Span<float>(qr, QueryBlock * dp).Clear();
        new Span<float>(gr, QueryBlock * dp).Clear();
        for (int j = 0; j < QueryBlock; j++)
        {
            int n = q0 + Math.Min(j, count - 1);
            long at = ((long)b * s.Queries + n) * s.Width + (long)h * d;
            float* query = t.Q + at, gradOutput = t.GradO + at, output = t.O + at;
            bool real = j < count;
            float delta = 0;
            for (int i = 0; i < d; i++)
            {
                qt[i * QueryBlock + j] = query[i];
                gt[i * QueryBlock + j] = real ? gradOutput[i] : 0f;
                if (real)
                {
                    qr[j * dp + i] = query[i];
                    gr[j * dp + i] = gradOutput[i];
                    delta += gradOutput[i] * output[i];
                }
            }
            x.LogSums[block * QueryBlock + j] = logSums[n];
            x.Deltas[block * QueryBlock + j] = delta;
        }
    }

    // weights[m][j] = 2^(scale·scores[m][j] − logSum[j]) in place: the forward's normalised weights again.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Weights(float* scores, int keys, Vector512<float> logSum0, Vector512<float> logSum1, Vector512<float> scale)
    {
        var shift0 = -logSum0;
        var shift1 = -logSum1;
        for (int m = 0; m < keys; m++)
        {
            float* p = scores + (long)m * QueryBlock;
            Exp2(Avx512F.FusedMultiplyAdd(Vector512.Load(p), scale, shift0)).Store(p);
            Exp2(Avx512F.FusedMultiplyAdd(Vector512.Load(p + 16), scale, shift1)).Store(p + 16);
        }
    }

    // gradients[m][j] = weights[m][j] · (gradients[m][j] − Δ[j]) · gradientScale in place: the scores' gradient with the
    // 1/√d of the scores folded in, so that dQ = dS·K and dK = dSᵀ·Q need no further scaling.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WeightGradients(float* weights, float* gradients, int keys, Vector512<float> delta0, Vector512<float> delta1,
        Vector512<float> gradientScale)
    {
        for (int m = 0; m < keys; m++)
        {
            float* w = weights + (long)m * QueryBlock, g = gradients + (long)m * QueryBlock;
            (Vector512.Load(w) * (Vector512.Load(g) - delta0) * gradientScale).Store(g);
            (Vector512.Load(w + 16) * (Vector512.Load(g + 16) - delta1) * gradientScale).Store(g + 16);
        }
    }

    // target[m][i] += Σ_j weights[m][j] · rows[j][i] for the chunk's keys m and every (padded) dimension i: a chunk's
    // share of Pᵀ·dO or dSᵀ·Q. Twelve keys a register tile, 32 or 16 dimensions at a time.
    private static void KeyRows(float* weights, float* rows, float* target, int keys, int paddedDim)
    {
        for (int m0 = 0; m0 < keys; m0 += KeyBlock)
        {
            int count = Math.Min(KeyBlock, keys - m0);
            float* w = weights + (long)m0 * QueryBlock, t = target + (long)m0 * paddedDim;
            int i0 = 0;
            for (; i0 + 32 <= paddedDim; i0 += 32) KeyRows2(w, rows + i0, paddedDim, t + i0, count);
            if (i0 < paddedDim) KeyRows1(w, rows + i0, paddedDim, t + i0, count);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KeyRows2(float* w, float* rows, int stride, float* target, int count)
    {
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default,
            a3 = default, b3 = default, a4 = default, b4 = default, a5 = default, b5 = default,
            a6 = default, b6 = default, a7 = default, b7 = default, a8 = default, b8 = default,
            a9 = default, b9 = default, a10 = default, b10 = default, a11 = default, b11 = default;
        for (int j = 0; j < QueryBlock; j++)
        {
            float* r = rows + (long)j * stride;
            var x = Vector512.Load(r);
            var y = Vector512.Load(r + 16);
            float* wp = w + j;
            Vector512<float> v;
            v = Vector512.Create(wp[0 * QueryBlock]); a0 = Avx512F.FusedMultiplyAdd(x, v, a0); b0 = Avx512F.FusedMultiplyAdd(y, v, b0);
            v = Vector512.Create(wp[1 * QueryBlock]); a1 = Avx512F.FusedMultiplyAdd(x, v, a1); b1 = Avx512F.FusedMultiplyAdd(y, v, b1);
            v = Vector512.Create(wp[2 * QueryBlock]); a2 = Avx512F.FusedMultiplyAdd(x, v, a2); b2 = Avx512F.FusedMultiplyAdd(y, v, b2);
            v = Vector512.Create(wp[3 * QueryBlock]); a3 = Avx512F.FusedMultiplyAdd(x, v, a3); b3 = Avx512F.FusedMultiplyAdd(y, v, b3);
            v = Vector512.Create(wp[4 * QueryBlock]); a4 = Avx512F.FusedMultiplyAdd(x, v, a4); b4 = Avx512F.FusedMultiplyAdd(y, v, b4);
            v = Vector512.Create(wp[5 * QueryBlock]); a5 = Avx512F.FusedMultiplyAdd(x, v, a5); b5 = Avx512F.FusedMultiplyAdd(y, v, b5);
            v = Vector512.Create(wp[6 * QueryBlock]); a6 = Avx512F.FusedMultiplyAdd(x, v, a6); b6 = Avx512F.FusedMultiplyAdd(y, v, b6);
            v = Vector512.Create(wp[7 * QueryBlock]); a7 = Avx512F.FusedMultiplyAdd(x, v, a7); b7 = Avx512F.FusedMultiplyAdd(y, v, b7);
            v = Vector512.Create(wp[8 * QueryBlock]); a8 = Avx512F.FusedMultiplyAdd(x, v, a8); b8 = Avx512F.FusedMultiplyAdd(y, v, b8);
            v = Vector512.Create(wp[9 * QueryBlock]); a9 = Avx512F.FusedMultiplyAdd(x, v, a9); b9 = Avx512F.FusedMultiplyAdd(y, v, b9);
            v = Vector512.Create(wp[10 * QueryBlock]); a10 = Avx512F.FusedMultiplyAdd(x, v, a10); b10 = Avx512F.FusedMultiplyAdd(y, v, b10);
            v = Vector512.Create(wp[11 * QueryBlock]); a11 = Avx512F.FusedMultiplyAdd(x, v, a11); b11 = Avx512F.FusedMultiplyAdd(y, v, b11);
        }
        AddRow(target, 0, stride, count, a0, b0); AddRow(target, 1, stride, count, a1, b1); AddRow(target, 2, stride, count, a2, b2);
        AddRow(target, 3, stride, count, a3, b3); AddRow(target, 4, stride, count, a4, b4); AddRow(target, 5, stride, count, a5, b5);
        AddRow(target, 6, stride, count, a6, b6); AddRow(target, 7, stride, count, a7, b7); AddRow(target, 8, stride, count, a8, b8);
        AddRow(target, 9, stride, count, a9, b9); AddRow(target, 10, stride, count, a10, b10); AddRow(target, 11, stride, count, a11, b11);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KeyRows1(float* w, float* rows, int stride, float* target, int count)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default,
            a6 = default, a7 = default, a8 = default, a9 = default, a10 = default, a11 = default;
        for (int j = 0; j < QueryBlock; j++)
        {
            var x = Vector512.Load(rows + (long)j * stride);
            float* wp = w + j;
            a0 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[0 * QueryBlock]), a0);
            a1 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[1 * QueryBlock]), a1);
            a2 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[2 * QueryBlock]), a2);
            a3 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[3 * QueryBlock]), a3);
            a4 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[4 * QueryBlock]), a4);
            a5 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[5 * QueryBlock]), a5);
            a6 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[6 * QueryBlock]), a6);
            a7 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[7 * QueryBlock]), a7);
            a8 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[8 * QueryBlock]), a8);
            a9 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[9 * QueryBlock]), a9);
            a10 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[10 * QueryBlock]), a10);
            a11 = Avx512F.FusedMultiplyAdd(x, Vector512.Create(wp[11 * QueryBlock]), a11);
        }
        AddRow(target, 0, stride, count, a0); AddRow(target, 1, stride, count, a1); AddRow(target, 2, stride, count, a2);
        AddRow(target, 3, stride, count, a3); AddRow(target, 4, stride, count, a4); AddRow(target, 5, stride, count, a5);
        AddRow(target, 6, stride, count, a6); AddRow(target, 7, stride, count, a7); AddRow(target, 8, stride, count, a8);
        AddRow(target, 9, stride, count, a9); AddRow(target, 10, stride, count, a10); AddRow(target, 11, stride, count, a11);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow(float* target, int r, int stride, int count, Vector512<float> a, Vector512<float> b)
    {
        if (r >= count) return;
        float* p = target + (long)r * stride;
        (Vector512.Load(p) + a).Store(p);
        (Vector512.Load(p + 16) + b).Store(p + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow(float* target, int r, int stride, int count, Vector512<float> a)
    {
        if (r >= count) return;
        float* p = target + (long)r * stride;
        (Vector512.Load(p) + a).Store(p);
    }
}
