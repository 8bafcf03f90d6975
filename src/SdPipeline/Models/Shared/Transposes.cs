using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace SdPipeline.Models.Shared;

/// <summary>Copies of float32 blocks with rows and columns swapped, the layout <see cref="Brgemm"/>'s micro-kernel reads, 16 × 16 in AVX-512 registers.</summary>
internal static unsafe class Transposes
{
    /// <summary>
    /// target[r][c] = source[c][r] for r &lt; <paramref name="rows"/>, c &lt; <paramref name="columns"/>: the source's
    /// <paramref name="columns"/> rows, <paramref name="sourceStride"/> apart, become the target's columns (its rows
    /// <paramref name="targetStride"/> apart). Needs AVX-512 where both counts reach 16.
    /// </summary>
    public static void Transpose(float* source, long sourceStride, long rows, long columns, float* target, long targetStride)
    {
        long fullColumns = columns / 16 * 16, fullRows = rows / 16 * 16;
        for (long c = 0; c < fullColumns; c += 16)
            for (long r = 0; r < fullRows; r += 16)
                Transpose16(source + c * sourceStride + r, sourceStride, target + r * targetStride + c, targetStride);
        for (long c = 0; c < columns; c++)
        {
            float* row = source + c * sourceStride;
            for (long r = c < fullColumns ? fullRows : 0; r < rows; r++) target[r * targetStride + c] = row[r];
        }
    }

    /// <summary>target[r][c] = source[c][r] for a 16 × 16 block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Transpose16(float* source, long sourceStride, float* target, long targetStride)
    {
        // Rows interleaved in pairs, then fours (within each 128-bit lane): u[4g + c]'s lane L holds rows 4g..4g+3 of
        // column 4L + c; two 128-bit lane shuffles then gather each column's four lanes.
        Vector512<float> t0 = Avx512F.UnpackLow(Row(0), Row(1)), t1 = Avx512F.UnpackHigh(Row(0), Row(1));
        Vector512<float> t2 = Avx512F.UnpackLow(Row(2), Row(3)), t3 = Avx512F.UnpackHigh(Row(2), Row(3));
        Vector512<float> t4 = Avx512F.UnpackLow(Row(4), Row(5)), t5 = Avx512F.UnpackHigh(Row(4), Row(5));
        Vector512<float> t6 = Avx512F.UnpackLow(Row(6), Row(7)), t7 = Avx512F.UnpackHigh(Row(6), Row(7));
        Vector512<float> t8 = Avx512F.UnpackLow(Row(8), Row(9)), t9 = Avx512F.UnpackHigh(Row(8), Row(9));
        Vector512<float> t10 = Avx512F.UnpackLow(Row(10), Row(11)), t11 = Avx512F.UnpackHigh(Row(10), Row(11));
        Vector512<float> t12 = Avx512F.UnpackLow(Row(12), Row(13)), t13 = Avx512F.UnpackHigh(Row(12), Row(13));
        Vector512<float> t14 = Avx512F.UnpackLow(Row(14), Row(15)), t15 = Avx512F.UnpackHigh(Row(14), Row(15));
        Columns4(Avx512F.Shuffle(t0, t2, 0x44), Avx512F.Shuffle(t4, t6, 0x44), Avx512F.Shuffle(t8, t10, 0x44), Avx512F.Shuffle(t12, t14, 0x44), 0);
        Columns4(Avx512F.Shuffle(t0, t2, 0xEE), Avx512F.Shuffle(t4, t6, 0xEE), Avx512F.Shuffle(t8, t10, 0xEE), Avx512F.Shuffle(t12, t14, 0xEE), 1);
        Columns4(Avx512F.Shuffle(t1, t3, 0x44), Avx512F.Shuffle(t5, t7, 0x44), Avx512F.Shuffle(t9, t11, 0x44), Avx512F.Shuffle(t13, t15, 0x44), 2);
        Columns4(Avx512F.Shuffle(t1, t3, 0xEE), Avx512F.Shuffle(t5, t7, 0xEE), Avx512F.Shuffle(t9, t11, 0xEE), Avx512F.Shuffle(t13, t15, 0xEE), 3);

        Vector512<float> Row(int r) => Avx512F.LoadVector512(source + r * sourceStride);

        // Columns c, 4 + c, 8 + c and 12 + c from the four groups of rows.
        void Columns4(Vector512<float> rows0, Vector512<float> rows4, Vector512<float> rows8, Vector512<float> rows12, int c)
        {
            Vector512<float> even = Avx512F.Shuffle4x128(rows0, rows4, 0x88), odd = Avx512F.Shuffle4x128(rows0, rows4, 0xDD);
            Vector512<float> even8 = Avx512F.Shuffle4x128(rows8, rows12, 0x88), odd8 = Avx512F.Shuffle4x128(rows8, rows12, 0xDD);
            Avx512F.Store(target + c * targetStride, Avx512F.Shuffle4x128(even, even8, 0x88));
            Avx512F.Store(target + (8 + c) * targetStride, Avx512F.Shuffle4x128(even, even8, 0xDD));
            Avx512F.Store(target + (4 + c) * targetStride, Avx512F.Shuffle4x128(odd, odd8, 0x88));
            Avx512F.Store(target + (12 + c) * targetStride, Avx512F.Shuffle4x128(odd, odd8, 0xDD));
        }
    }
}
