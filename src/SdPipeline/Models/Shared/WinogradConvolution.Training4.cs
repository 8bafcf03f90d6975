using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace SdPipeline.Models.Shared;

// Training's tiled passes by F(4×4, 3×3): a 4×4 block of outputs from a 6×6 input tile, 36 products a tile and channel
// pair where F(2×2, 3×3) makes 64 for the same outputs (44% fewer). Its points are 0, 1, −1, 2, −½ and ∞: against
// float64, a 320 → 320 layer at 32×32 errs by 5.2e-6 of the largest output (2.4e-6 RMS) and 1.9e-6 of the largest weight
// gradient, where 0, ±1, ±2, ∞ err by 1.4e-5 and 6.0e-6, and F(2×2, 3×3) by 8e-7 (numpy, float32 transforms and sums;
// the tests measure this code's own). The transforms below are Lavin and Gray's Bᵀ·d·B, G·g·Gᵀ and Aᵀ·M·A for those
// points; for the weight's gradient, A·dY·Aᵀ and Gᵀ·S·G, the forward's transpose.
internal static unsafe partial class WinogradConvolution
{
    private const int LargeTileElements = 36;

    private static readonly Vector512<float> Third = Vector512.Create(1f / 3);
    private static readonly Vector512<float> Fifteenth = Vector512.Create(1f / 15);

    // Every tile of an input whose sides are multiples of 4 into V [36, tiles, C_in] (the tiled passes hold them all at once).
    private readonly struct LargeInputTransform(float* x, float* zeros, float* v, Shape shape, long tiles, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(tiles, parts, part);
            float** d = stackalloc float*[LargeTileElements];
            float* columns = stackalloc float[LargeTileElements * Lanes];
            for (long t = from; t < from + share; t++) TransformLargeInputTile(x, zeros, v, shape, t, tiles, d, columns);
        }
    }

    // The 4×4 outputs of every tile from their products M [36, tiles, C_out].
    private readonly struct LargeOutputTransform(float* m, float* y, float* bias, Shape shape, long tiles, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(tiles, parts, part);
            float* columns = stackalloc float[4 * 6 * Lanes];
            for (long t = from; t < from + share; t++) TransformLargeOutputTile(m, y, bias, shape, t, tiles, columns);
        }
    }

    // Every tile of the output's gradient into Ŷ [36, tiles, C_out].
    private readonly struct LargeOutputGradientTransform(float* dy, float* yHat, Shape shape, long tiles, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(tiles, parts, part);
            float* columns = stackalloc float[6 * 4 * Lanes];
            for (long t = from; t < from + share; t++) TransformLargeOutputGradientTile(dy, yHat, shape, t, tiles, columns);
        }
    }

    // V[k, tile, c] = (Bᵀ·d·B)[k] for the 6×6 input tile at rows 4ty−1…4ty+4, columns 4tx−1…4tx+4 (zero outside: those
    // positions read `zeros`). `d` holds the tile's 36 row pointers, `columns` Bᵀ·d for 16 channels.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformLargeInputTile(float* x, float* zeros, float* v, Shape s, long tile, long tiles, float** d, float* columns)
    {
        InputTilePositions(x, zeros, s, tile, 4, d);
        long k = tiles * s.Cin;
        float* target = v + tile * s.Cin;
        for (long c = 0; c < s.Cin; c += Lanes)
        {
            // Bᵀ·d, column by column: element (i, j) to columns[6i + j].
            for (int j = 0; j < 6; j++)
                InputCombination(Vector512.Load(d[j] + c), Vector512.Load(d[6 + j] + c), Vector512.Load(d[12 + j] + c),
                    Vector512.Load(d[18 + j] + c), Vector512.Load(d[24 + j] + c), Vector512.Load(d[30 + j] + c), columns + j * Lanes, 6 * Lanes);
            // (Bᵀ·d)·B, row by row: element (i, q) to V[6i + q].
            for (int i = 0; i < 6; i++)
            {
                float* row = columns + 6 * i * Lanes;
                InputCombination(Vector512.Load(row), Vector512.Load(row + Lanes), Vector512.Load(row + 2 * Lanes),
                    Vector512.Load(row + 3 * Lanes), Vector512.Load(row + 4 * Lanes), Vector512.Load(row + 5 * Lanes), target + c + 6 * i * k, k);
            }
        }
    }

    // Bᵀ·(d0 … d5) to o, o + stride, …, o + 5·stride.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputCombination(Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3, Vector512<float> d4,
        Vector512<float> d5, float* o, long stride)
    {
        var d13 = d1 - d3;
        var d42 = d4 - d2;
        (d0 + d4 + d13 * 1.5f - d2 * 2f).Store(o);
        (d4 - d1 - d2 * 2.5f - d3 * 0.5f).Store(o + stride);
        (d4 + d1 + d2 * 0.5f - d3 * 2.5f).Store(o + 2 * stride);
        (d42 - d13 * 0.5f).Store(o + 3 * stride);
        (d42 + d13 * 2f).Store(o + 4 * stride);
        (d1 + d5 - d3 * 2f + (d2 - d4) * 1.5f).Store(o + 5 * stride);
    }

    // The 4×4 outputs Aᵀ·M·A (+ bias) of the tile whose products are M[k, tile, :]; `columns` holds Aᵀ·M for 16 channels.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformLargeOutputTile(float* m, float* y, float* bias, Shape s, long tile, long tiles, float* columns)
    {
        long perImage = s.TilesH * s.TilesW;
        long image = tile / perImage, inImage = tile % perImage;
        long row0 = inImage / s.TilesW * 4, col0 = inImage % s.TilesW * 4;
        long k = tiles * s.Cout;
        float* source = m + tile * s.Cout;
        float* corner = y + ((image * s.Height + row0) * s.Width + col0) * s.Cout;
        for (long c = 0; c < s.Cout; c += Lanes)
        {
            float* p = source + c;
            // Aᵀ·M, column by column: element (i, j) to columns[6i + j].
            for (int j = 0; j < 6; j++)
            {
                var (y0, y1, y2, y3) = OutputCombination(Vector512.Load(p + j * k), Vector512.Load(p + (6 + j) * k), Vector512.Load(p + (12 + j) * k),
                    Vector512.Load(p + (18 + j) * k), Vector512.Load(p + (24 + j) * k), Vector512.Load(p + (30 + j) * k));
                y0.Store(columns + j * Lanes);
                y1.Store(columns + (6 + j) * Lanes);
                y2.Store(columns + (12 + j) * Lanes);
                y3.Store(columns + (18 + j) * Lanes);
            }
            var b = bias is null ? Vector512<float>.Zero : Vector512.Load(bias + c);
            // (Aᵀ·M)·A, row by row.
            for (int i = 0; i < 4; i++)
            {
                float* row = columns + 6 * i * Lanes;
                var (y0, y1, y2, y3) = OutputCombination(Vector512.Load(row), Vector512.Load(row + Lanes), Vector512.Load(row + 2 * Lanes),
                    Vector512.Load(row + 3 * Lanes), Vector512.Load(row + 4 * Lanes), Vector512.Load(row + 5 * Lanes));
                float* o = corner + i * s.Width * s.Cout + c;
                (y0 + b).Store(o);
                (y1 + b).Store(o + s.Cout);
                (y2 + b).Store(o + 2 * s.Cout);
                (y3 + b).Store(o + 3 * s.Cout);
            }
        }
    }

    // Aᵀ·(m0 … m5): m0+m1+m2+m3+m4, m1−m2+2m3−½m4, m1+m2+4m3+¼m4, m1−m2+8m3−⅛m4+m5.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) OutputCombination(Vector512<float> m0,
        Vector512<float> m1, Vector512<float> m2, Vector512<float> m3, Vector512<float> m4, Vector512<float> m5)
    {
        var sum = m1 + m2;
        var difference = m1 - m2;
        return (m0 + sum + m3 + m4, difference + m3 * 2f - m4 * 0.5f, sum + m3 * 4f + m4 * 0.25f, difference + m3 * 8f - m4 * 0.125f + m5);
    }

    // Ŷ[k, tile, c] = (A·dY·Aᵀ)[k] for the 4×4 tile of the output's gradient at rows 4ty…4ty+3, columns 4tx…4tx+3;
    // `columns` holds A·dY for 16 channels.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformLargeOutputGradientTile(float* dy, float* yHat, Shape s, long tile, long tiles, float* columns)
    {
        long perImage = s.TilesH * s.TilesW;
        long image = tile / perImage, inImage = tile % perImage;
        long row0 = inImage / s.TilesW * 4, col0 = inImage % s.TilesW * 4;
        float* corner = dy + ((image * s.Height + row0) * s.Width + col0) * s.Cout;
        long rowStride = s.Width * s.Cout, k = tiles * s.Cout;
        float* target = yHat + tile * s.Cout;
        for (long c = 0; c < s.Cout; c += Lanes)
        {
            // A·dY, column by column: element (i, j) to columns[4i + j].
            for (int j = 0; j < 4; j++)
            {
                float* p = corner + j * s.Cout + c;
                GradientCombination(Vector512.Load(p), Vector512.Load(p + rowStride), Vector512.Load(p + 2 * rowStride), Vector512.Load(p + 3 * rowStride),
                    columns + j * Lanes, 4 * Lanes);
            }
            // (A·dY)·Aᵀ, row by row: element (i, q) to Ŷ[6i + q].
            for (int i = 0; i < 6; i++)
            {
                float* row = columns + 4 * i * Lanes;
                GradientCombination(Vector512.Load(row), Vector512.Load(row + Lanes), Vector512.Load(row + 2 * Lanes), Vector512.Load(row + 3 * Lanes),
                    target + c + 6 * i * k, k);
            }
        }
    }

    // A·(d0 … d3) to o, o + stride, …, o + 5·stride: d0, d0+d1+d2+d3, d0−d1+d2−d3, d0+2d1+4d2+8d3, d0−½d1+¼d2−⅛d3, d3.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GradientCombination(Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3, float* o, long stride)
    {
        var even = d0 + d2;
        var odd = d1 + d3;
        d0.Store(o);
        (even + odd).Store(o + stride);
        (even - odd).Store(o + 2 * stride);
        (d0 + d1 * 2f + d2 * 4f + d3 * 8f).Store(o + 3 * stride);
        (d0 - d1 * 0.5f + d2 * 0.25f - d3 * 0.125f).Store(o + 4 * stride);
        d3.Store(o + 5 * stride);
    }

    // G·g·Gᵀ of sixteen consecutive kernels of a plain weight (as TransformPlainKernels reads them) into U[k] = u + k·`kStride`,
    // k < 36, one lane a kernel; `flipped` transforms each kernel turned by 180° (tap t read as tap 8 − t), as the input's
    // gradient convolves by.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformPlainKernelsLarge(float* g, float* rows, float* u, long kStride, bool flipped)
    {
        Transposes.Transpose16(g, 9, rows, Lanes, lastRowEarly: true);
        long first = flipped ? 8 * Lanes : 0, step = flipped ? -Lanes : Lanes;
        Vector512<float> g00 = Vector512.Load(rows + first), g01 = Vector512.Load(rows + first + step), g02 = Vector512.Load(rows + first + 2 * step);
        Vector512<float> g10 = Vector512.Load(rows + first + 3 * step), g11 = Vector512.Load(rows + first + 4 * step), g12 = Vector512.Load(rows + first + 5 * step);
        Vector512<float> g20 = Vector512.Load(rows + first + 6 * step), g21 = Vector512.Load(rows + first + 7 * step), g22 = Vector512.Load(rows + first + 8 * step);
        // G·g, column by column: a_ic = (G·g)[i, c].
        var (a00, a10, a20, a30, a40, a50) = KernelCombination(g00, g10, g20);
        var (a01, a11, a21, a31, a41, a51) = KernelCombination(g01, g11, g21);
        var (a02, a12, a22, a32, a42, a52) = KernelCombination(g02, g12, g22);
        // (G·g)·Gᵀ, row by row: element (i, q) to U[6i + q].
        StoreKernelRow(KernelCombination(a00, a01, a02), u, kStride);
        StoreKernelRow(KernelCombination(a10, a11, a12), u + 6 * kStride, kStride);
        StoreKernelRow(KernelCombination(a20, a21, a22), u + 12 * kStride, kStride);
        StoreKernelRow(KernelCombination(a30, a31, a32), u + 18 * kStride, kStride);
        StoreKernelRow(KernelCombination(a40, a41, a42), u + 24 * kStride, kStride);
        StoreKernelRow(KernelCombination(a50, a51, a52), u + 30 * kStride, kStride);
    }

    // G·(a0, a1, a2): a0, −⅓(a0+a1+a2), ⅓(a0−a1+a2), (a0+2a1+4a2)/15, −4(4a0−2a1+a2)/15, a2.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) KernelCombination(
        Vector512<float> a0, Vector512<float> a1, Vector512<float> a2)
    {
        var outer = a0 + a2;
        return (a0, -(outer + a1) * Third, (outer - a1) * Third, (a0 + a1 * 2f + a2 * 4f) * Fifteenth,
            (a0 * 4f - a1 * 2f + a2) * Fifteenth * -4f, a2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreKernelRow((Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>, Vector512<float>) row,
        float* u, long k)
    {
        row.Item1.Store(u);
        row.Item2.Store(u + k);
        row.Item3.Store(u + 2 * k);
        row.Item4.Store(u + 3 * k);
        row.Item5.Store(u + 4 * k);
        row.Item6.Store(u + 5 * k);
    }

    // taps[t][lane] = (Gᵀ·S·G)[t / 3, t % 3] for the 6×6 sums S[6r + c] = s[(6r + c)·k + lane].
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformLargeSums(float* s, long k, float* taps)
    {
        // Gᵀ·S, column by column: b_jc = (Gᵀ·S)[j, c].
        var (b00, b10, b20) = SumCombination(s, 6 * k);
        var (b01, b11, b21) = SumCombination(s + k, 6 * k);
        var (b02, b12, b22) = SumCombination(s + 2 * k, 6 * k);
        var (b03, b13, b23) = SumCombination(s + 3 * k, 6 * k);
        var (b04, b14, b24) = SumCombination(s + 4 * k, 6 * k);
        var (b05, b15, b25) = SumCombination(s + 5 * k, 6 * k);
        // (Gᵀ·S)·G, row by row.
        StoreTaps(SumCombination(b00, b01, b02, b03, b04, b05), taps);
        StoreTaps(SumCombination(b10, b11, b12, b13, b14, b15), taps + 3 * Lanes);
        StoreTaps(SumCombination(b20, b21, b22, b23, b24, b25), taps + 6 * Lanes);

        static void StoreTaps((Vector512<float> First, Vector512<float> Second, Vector512<float> Third) row, float* target)
        {
            row.First.Store(target);
            row.Second.Store(target + Lanes);
            row.Third.Store(target + 2 * Lanes);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>) SumCombination(float* s, long stride) =>
        SumCombination(Vector512.Load(s), Vector512.Load(s + stride), Vector512.Load(s + 2 * stride), Vector512.Load(s + 3 * stride),
            Vector512.Load(s + 4 * stride), Vector512.Load(s + 5 * stride));

    // Gᵀ·(s0 … s5): s0 + ⅓(s2−s1) + (s3−16s4)/15, −⅓(s1+s2) + (2s3+8s4)/15, ⅓(s2−s1) + (4s3−4s4)/15 + s5.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>) SumCombination(Vector512<float> s0, Vector512<float> s1,
        Vector512<float> s2, Vector512<float> s3, Vector512<float> s4, Vector512<float> s5)
    {
        var odd = (s2 - s1) * Third;
        return (s0 + odd + (s3 - s4 * 16f) * Fifteenth, (s3 * 2f + s4 * 8f) * Fifteenth - (s1 + s2) * Third, odd + (s3 - s4) * 4f * Fifteenth + s5);
    }
}
