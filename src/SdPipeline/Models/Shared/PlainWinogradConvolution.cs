using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Winograd's F(2×2, 3×3) (as <see cref="WinogradConvolution"/>) for an input in the plain layout [B, C, H, W], as the
/// UNet's activations are: sixteen horizontally adjacent tiles sit in the vector lanes, so a tile row of one channel is
/// read and written as whole image rows and no layout copy is made around the convolution.
/// </summary>
/// <remarks>
/// Per block of output channels (all of them unless U would pass 32 MiB) the weight is transformed into U [16, C_out,
/// C_in]; then per chunk of tile groups (16 tiles each) the input transform writes V [16, C_in, S] (S the chunk's tiles),
/// one batched GEMM makes M = U·V [16, C_out, S], and the output transform writes the 2×2 outputs of each tile, plus
/// the bias, into the plain-layout result.
/// </remarks>
// The kernels' stack buffers are written before they are read, or cleared where that matters.
[SkipLocalsInit]
internal static unsafe class PlainWinogradConvolution
{
    private const int Lanes = 16;
    private const int TileElements = 16;
    // Widths up to this many columns keep a part's four staged input rows on its stack (4 × 2 KiB).
    private const long MaxWidth = 512;

    /// <summary>
    /// Whether <paramref name="conv"/> on <paramref name="input"/> can run here: as <see cref="WinogradConvolution.Applies"/>
    /// asks (3×3, stride 1, padding 1 with zeros, float32 CPU, channels multiples of 16, nothing needing a gradient), but
    /// the input contiguous in the plain layout and at most 512 columns wide.
    /// </summary>
    public static bool Applies(Tensor input, Conv2d conv) =>
        WinogradConvolution.AppliesToPlain(input, conv) && input.shape[3] <= MaxWidth;

    /// <summary><paramref name="conv"/> applied to <paramref name="input"/> (check <see cref="Applies"/> first), in the plain layout.</summary>
    public static Tensor Convolve(Tensor input, Conv2d conv)
    {
        long batch = input.shape[0], cin = input.shape[1], height = input.shape[2], width = input.shape[3];
        var weight = conv.weight!;
        long cout = weight.shape[0];
        var shape = new Shape(batch, height, width, (height + 1) / 2, ((width + 1) / 2 + Lanes - 1) / Lanes, cin, cout);
        long block = WinogradConvolution.OutputBlock(cin, cout);
        long perChunk = Math.Max(1, ChunkBytes / (TileElements * Lanes * sizeof(float) * Math.Max(cin, block)));
        var output = empty([batch, cout, height, width], ScalarType.Float32);
        using var scratch = empty(TileElements * cin * Lanes * Math.Min(perChunk, shape.Groups), ScalarType.Float32);
        float* x = KernelTensors.Address(input), y = KernelTensors.Address(output), vp = KernelTensors.Address(scratch);
        float* bias = conv.bias is null ? null : KernelTensors.Address(conv.bias);
        int threads = Math.Max(1, get_num_threads());
        for (long firstOut = 0; firstOut < cout; firstOut += block)
        {
            long outputs = Math.Min(block, cout - firstOut);
            using var weights = weight.narrow(0, firstOut, outputs);
            using var transformed = WinogradConvolution.TransformWeight(weights);
            for (long first = 0; first < shape.Groups; first += perChunk)
            {
                long count = Math.Min(perChunk, shape.Groups - first);
                var inputs = new InputTransform(x, vp, shape, first, count, threads);
                KernelThreads.Run(threads, ref inputs);
                using var filled = scratch.narrow(0, 0, TileElements * cin * Lanes * count);
                using var v = filled.view(TileElements, cin, Lanes * count);
                using var m = BatchedProduct.Preferred ? BatchedProduct.Multiply(transformed, v) : bmm(transformed, v);
                var transform = new OutputTransform(KernelTensors.Address(m), y, bias, shape, firstOut, outputs, first, count, threads);
                KernelThreads.Run(threads, ref transform);
            }
        }
        return output;
    }

    // V and M at most this large a chunk: a chunk's GEMM reads all of U, so chunks must be large enough to amortise
    // that, and small enough that V and M stay in the cache between the transforms and the GEMM.
    private const long ChunkBytes = 8L << 20;

    // TilesH tile rows of an image, GroupsW groups of 16 tiles a tile row (the last may be partly past the edge).
    private readonly record struct Shape(long Batch, long Height, long Width, long TilesH, long GroupsW, long Cin, long Cout)
    {
        public long Groups => Batch * TilesH * GroupsW;

        // Which image, tile row and group within the row a group index is (groups run along rows, rows down images).
        public (long Image, long TileRow, long Column) Locate(long group) => (group / GroupsW / TilesH, group / GroupsW % TilesH, group % GroupsW);

        // Columns of a staged row: the left zero, the image row, zeros to the last group's last tile.
        public int StagedWidth => (int)(2 * Lanes * GroupsW + 2);
    }

    // Groups [first, first + count) into V, each part taking a share of the input channels.
    private readonly struct InputTransform(float* x, float* v, Shape shape, long first, long count, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(shape.Cin, parts, part);
            int staged = shape.StagedWidth;
            float* rows = stackalloc float[4 * staged];
            float* zeroRow = stackalloc float[staged];
            new Span<float>(rows, 4 * staged).Clear();
            new Span<float>(zeroRow, staged).Clear();
            long slots = Lanes * count;
            var d = stackalloc float*[4];
            for (long c = from; c < from + share; c++)
            {
                long stagedImage = -1, stagedRow = -1;
                for (long g = 0; g < count; g++)
                {
                    var (image, ty, gx) = shape.Locate(first + g);
                    if (image != stagedImage || ty != stagedRow)
                    {
                        float* plane = x + (image * shape.Cin + c) * shape.Height * shape.Width;
                        for (int i = 0; i < 4; i++)
                        {
                            long r = 2 * ty - 1 + i;
                            if (r < 0 || r >= shape.Height) { d[i] = zeroRow; continue; }
                            d[i] = rows + i * staged;
                            new ReadOnlySpan<float>(plane + r * shape.Width, (int)shape.Width).CopyTo(new Span<float>(d[i] + 1, (int)shape.Width));
                        }
                        stagedImage = image; stagedRow = ty;
                    }
                    TransformInputGroup(d, 2 * Lanes * gx, v + c * slots + Lanes * g, shape.Cin * slots);
                }
            }
        }
    }

    private static readonly Vector512<int> Evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    private static readonly Vector512<int> Odds = Vector512.Create(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);

    // Bᵀ d B of sixteen tiles side by side, tile t's 4×4 input at columns 2t…2t+3 of the four staged rows (offset by
    // `column`), written to V[k] at `target` + k·`kStride`.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformInputGroup(float** rows, long column, float* target, long kStride)
    {
        // Row i's columns j of the sixteen tiles: even and odd columns from 32 staged values, then from 2 further on.
        var evens = Evens; var odds = Odds;
        float* p0 = rows[0] + column, p1 = rows[1] + column, p2 = rows[2] + column, p3 = rows[3] + column;
        Columns(p0, evens, odds, out var d00, out var d01, out var d02, out var d03);
        Columns(p1, evens, odds, out var d10, out var d11, out var d12, out var d13);
        Columns(p2, evens, odds, out var d20, out var d21, out var d22, out var d23);
        Columns(p3, evens, odds, out var d30, out var d31, out var d32, out var d33);
        // Bᵀ d, column by column.
        var t00 = d00 - d20; var t10 = d10 + d20; var t20 = d20 - d10; var t30 = d10 - d30;
        var t01 = d01 - d21; var t11 = d11 + d21; var t21 = d21 - d11; var t31 = d11 - d31;
        var t02 = d02 - d22; var t12 = d12 + d22; var t22 = d22 - d12; var t32 = d12 - d32;
        var t03 = d03 - d23; var t13 = d13 + d23; var t23 = d23 - d13; var t33 = d13 - d33;
        // (Bᵀ d) B, row by row: element (i, j) goes to V[4i + j].
        float* o = target;
        long k = kStride;
        (t00 - t02).Store(o); (t01 + t02).Store(o + k); (t02 - t01).Store(o + 2 * k); (t01 - t03).Store(o + 3 * k);
        o += 4 * k;
        (t10 - t12).Store(o); (t11 + t12).Store(o + k); (t12 - t11).Store(o + 2 * k); (t11 - t13).Store(o + 3 * k);
        o += 4 * k;
        (t20 - t22).Store(o); (t21 + t22).Store(o + k); (t22 - t21).Store(o + 2 * k); (t21 - t23).Store(o + 3 * k);
        o += 4 * k;
        (t30 - t32).Store(o); (t31 + t32).Store(o + k); (t32 - t31).Store(o + 2 * k); (t31 - t33).Store(o + 3 * k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Columns(float* p, Vector512<int> evens, Vector512<int> odds,
        out Vector512<float> c0, out Vector512<float> c1, out Vector512<float> c2, out Vector512<float> c3)
    {
        var a = Vector512.Load(p); var b = Vector512.Load(p + Lanes);
        var a2 = Vector512.Load(p + 2); var b2 = Vector512.Load(p + 2 + Lanes);
        c0 = Avx512F.PermuteVar16x32x2(a, evens, b);
        c1 = Avx512F.PermuteVar16x32x2(a, odds, b);
        c2 = Avx512F.PermuteVar16x32x2(a2, evens, b2);
        c3 = Avx512F.PermuteVar16x32x2(a2, odds, b2);
    }

    // The outputs of groups [first, first + count) in output channels [firstOut, firstOut + outputs) from their
    // products M [16, outputs, 16·count], each part taking a share of those channels.
    private readonly struct OutputTransform(float* m, float* y, float* bias, Shape shape, long firstOut, long outputs, long first, long count, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(outputs, parts, part);
            long slots = Lanes * count, kStride = outputs * slots;
            float* edge = stackalloc float[2 * Lanes];
            for (long o = from; o < from + share; o++)
            {
                long channel = firstOut + o;
                var b = bias is null ? Vector512<float>.Zero : Vector512.Create(bias[channel]);
                for (long g = 0; g < count; g++)
                {
                    var (image, ty, gx) = shape.Locate(first + g);
                    float* row = y + ((image * shape.Cout + channel) * shape.Height + 2 * ty) * shape.Width + 2 * Lanes * gx;
                    int columns = (int)Math.Min(2 * Lanes, shape.Width - 2 * Lanes * gx);
                    bool secondRow = 2 * ty + 1 < shape.Height;
                    TransformOutputGroup(m + o * slots + Lanes * g, kStride, b, row, secondRow ? row + shape.Width : null, columns, edge);
                }
            }
        }
    }

    private static readonly Vector512<int> Lower = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    private static readonly Vector512<int> Upper = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);

    // Aᵀ M A (+ bias) of sixteen tiles side by side, M[k] at `source` + k·`kStride`; each output row's 2×16 values
    // interleaved into `columns` consecutive columns (all 32 but at the right edge, where they pass through `edge`).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformOutputGroup(float* p, long k, Vector512<float> b, float* row0, float* row1, int columns, float* edge)
    {
        var m00 = Vector512.Load(p); var m01 = Vector512.Load(p + k); var m02 = Vector512.Load(p + 2 * k); var m03 = Vector512.Load(p + 3 * k);
        var m10 = Vector512.Load(p + 4 * k); var m11 = Vector512.Load(p + 5 * k); var m12 = Vector512.Load(p + 6 * k); var m13 = Vector512.Load(p + 7 * k);
        var m20 = Vector512.Load(p + 8 * k); var m21 = Vector512.Load(p + 9 * k); var m22 = Vector512.Load(p + 10 * k); var m23 = Vector512.Load(p + 11 * k);
        var m30 = Vector512.Load(p + 12 * k); var m31 = Vector512.Load(p + 13 * k); var m32 = Vector512.Load(p + 14 * k); var m33 = Vector512.Load(p + 15 * k);
        // Aᵀ M, column by column.
        var s00 = m00 + m10 + m20; var s01 = m01 + m11 + m21; var s02 = m02 + m12 + m22; var s03 = m03 + m13 + m23;
        var s10 = m10 - m20 - m30; var s11 = m11 - m21 - m31; var s12 = m12 - m22 - m32; var s13 = m13 - m23 - m33;
        // (Aᵀ M) A, row by row.
        StoreRow(s00 + s01 + s02 + b, s01 - s02 - s03 + b, row0, columns, edge);
        if (row1 != null) StoreRow(s10 + s11 + s12 + b, s11 - s12 - s13 + b, row1, columns, edge);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(Vector512<float> left, Vector512<float> right, float* row, int columns, float* edge)
    {
        var low = Avx512F.PermuteVar16x32x2(left, Lower, right);
        var high = Avx512F.PermuteVar16x32x2(left, Upper, right);
        if (columns == 2 * Lanes)
        {
            low.Store(row);
            high.Store(row + Lanes);
            return;
        }
        low.Store(edge);
        high.Store(edge + Lanes);
        new ReadOnlySpan<float>(edge, columns).CopyTo(new Span<float>(row, columns));
    }
}
