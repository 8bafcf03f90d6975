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

    /// <summary>
    /// target[r][c] = source[c][r] for a 16 × 16 block. With <paramref name="lastRowEarly"/> the source's last row is read
    /// from 7 floats before it and shifted back, so that nothing after its 9th float is read (rows 9 floats apart, the
    /// last ending where the source does).
    /// </summary>
    // Inlined into its callers, and without local functions: the JIT passed a local function's vectors through the stack
    // and called it four times a block.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Transpose16(float* source, long sourceStride, float* target, long targetStride, bool lastRowEarly = false)
    {
        // Rows interleaved in pairs, then fours (within each 128-bit lane): u[4g + c]'s lane L holds rows 4g..4g+3 of
        // column 4L + c; two 128-bit lane shuffles then gather each column's four lanes.
        Vector512<float> r0 = Avx512F.LoadVector512(source), r1 = Avx512F.LoadVector512(source + sourceStride);
        Vector512<float> r2 = Avx512F.LoadVector512(source + 2 * sourceStride), r3 = Avx512F.LoadVector512(source + 3 * sourceStride);
        Vector512<float> r4 = Avx512F.LoadVector512(source + 4 * sourceStride), r5 = Avx512F.LoadVector512(source + 5 * sourceStride);
        Vector512<float> r6 = Avx512F.LoadVector512(source + 6 * sourceStride), r7 = Avx512F.LoadVector512(source + 7 * sourceStride);
        Vector512<float> r8 = Avx512F.LoadVector512(source + 8 * sourceStride), r9 = Avx512F.LoadVector512(source + 9 * sourceStride);
        Vector512<float> r10 = Avx512F.LoadVector512(source + 10 * sourceStride), r11 = Avx512F.LoadVector512(source + 11 * sourceStride);
        Vector512<float> r12 = Avx512F.LoadVector512(source + 12 * sourceStride), r13 = Avx512F.LoadVector512(source + 13 * sourceStride);
        Vector512<float> r14 = Avx512F.LoadVector512(source + 14 * sourceStride);
        Vector512<float> r15 = lastRowEarly
            ? Avx512F.AlignRight32(Vector512<uint>.Zero, Avx512F.LoadVector512(source + 15 * sourceStride - 7).AsUInt32(), 7).AsSingle()
            : Avx512F.LoadVector512(source + 15 * sourceStride);
        Vector512<float> t0 = Avx512F.UnpackLow(r0, r1), t1 = Avx512F.UnpackHigh(r0, r1);
        Vector512<float> t2 = Avx512F.UnpackLow(r2, r3), t3 = Avx512F.UnpackHigh(r2, r3);
        Vector512<float> t4 = Avx512F.UnpackLow(r4, r5), t5 = Avx512F.UnpackHigh(r4, r5);
        Vector512<float> t6 = Avx512F.UnpackLow(r6, r7), t7 = Avx512F.UnpackHigh(r6, r7);
        Vector512<float> t8 = Avx512F.UnpackLow(r8, r9), t9 = Avx512F.UnpackHigh(r8, r9);
        Vector512<float> t10 = Avx512F.UnpackLow(r10, r11), t11 = Avx512F.UnpackHigh(r10, r11);
        Vector512<float> t12 = Avx512F.UnpackLow(r12, r13), t13 = Avx512F.UnpackHigh(r12, r13);
        Vector512<float> t14 = Avx512F.UnpackLow(r14, r15), t15 = Avx512F.UnpackHigh(r14, r15);
        Columns4(Avx512F.Shuffle(t0, t2, 0x44), Avx512F.Shuffle(t4, t6, 0x44), Avx512F.Shuffle(t8, t10, 0x44), Avx512F.Shuffle(t12, t14, 0x44), target, targetStride);
        Columns4(Avx512F.Shuffle(t0, t2, 0xEE), Avx512F.Shuffle(t4, t6, 0xEE), Avx512F.Shuffle(t8, t10, 0xEE), Avx512F.Shuffle(t12, t14, 0xEE), target + targetStride, targetStride);
        Columns4(Avx512F.Shuffle(t1, t3, 0x44), Avx512F.Shuffle(t5, t7, 0x44), Avx512F.Shuffle(t9, t11, 0x44), Avx512F.Shuffle(t13, t15, 0x44), target + 2 * targetStride, targetStride);
        Columns4(Avx512F.Shuffle(t1, t3, 0xEE), Avx512F.Shuffle(t5, t7, 0xEE), Avx512F.Shuffle(t9, t11, 0xEE), Avx512F.Shuffle(t13, t15, 0xEE), target + 3 * targetStride, targetStride);
    }

    // Columns c, 4 + c, 8 + c and 12 + c from the four groups of rows, to target (at column c), 4, 8 and 12 rows further.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Columns4(Vector512<float> rows0, Vector512<float> rows4, Vector512<float> rows8, Vector512<float> rows12, float* target, long targetStride)
    {
        Vector512<float> even = Avx512F.Shuffle4x128(rows0, rows4, 0x88), odd = Avx512F.Shuffle4x128(rows0, rows4, 0xDD);
        Vector512<float> even8 = Avx512F.Shuffle4x128(rows8, rows12, 0x88), odd8 = Avx512F.Shuffle4x128(rows8, rows12, 0xDD);
        Avx512F.Store(target, Avx512F.Shuffle4x128(even, even8, 0x88));
        Avx512F.Store(target + 8 * targetStride, Avx512F.Shuffle4x128(even, even8, 0xDD));
        Avx512F.Store(target + 4 * targetStride, Avx512F.Shuffle4x128(odd, odd8, 0x88));
        Avx512F.Store(target + 12 * targetStride, Avx512F.Shuffle4x128(odd, odd8, 0xDD));
    }
}
