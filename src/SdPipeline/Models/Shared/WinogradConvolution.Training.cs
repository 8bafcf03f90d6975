using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

// Training's three products by F(2×2, 3×3), or F(4×4, 3×3) from 32×32 (WinogradConvolution.Training4.cs), with every tile
// of the batch in one chunk and the 16 or 36 products of each on GemmKernel (oneDNN's brgemm micro-kernel) rather than
// libtorch's bmm, which gives them to MKL's AMD code path.
internal static unsafe partial class WinogradConvolution
{
    // The transformed tiles of the largest operand, 16 or 36 × tiles × channels, at most this large for TrainingFits: each
    // pass holds V and M whole (SD 1.5 at 256 px batch 1: 5.9 MB at 32×32 with 640 channels, F(4×4, 3×3)'s 9/16 of
    // F(2×2, 3×3)'s; at 512 px the 64×64 level's layers up to 640 channels).
    private const long TrainingTileBytes = 24L << 20;

    // Channels of the weight a thread transforms and multiplies at a time (see Products): a block of U is 16 × 64 × C floats,
    // 7.9 MB at SD 1.5's widest 16×16 input (1920 channels).
    private const long ChannelBlock = 64;

    // G·flip(g) is G·g with its first and last rows swapped, so the flipped weight's transform is U with those rows and
    // columns swapped: element (r, c) of the transformed kernel comes from (π r, π c), π = [3, 1, 2, 0].
    private static ReadOnlySpan<byte> FlippedElement => [15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0];

    /// <summary>
    /// Whether <see cref="ConvolveForTraining"/>, <see cref="InputGradientForTraining"/> and
    /// <see cref="WeightGradientForTraining"/> take a layer whose input is <paramref name="input"/> [B, C_in, H, W] and output
    /// has <paramref name="outputs"/> channels: every tile of the batch fits one chunk (<see cref="TrainingTileBytes"/>).
    /// </summary>
    internal static bool TrainingFits(Tensor input, long outputs)
    {
        int side = TileSide(input);
        long tiles = input.shape[0] * ((input.shape[2] + side - 1) / side) * ((input.shape[3] + side - 1) / side);
        return Elements(side) * tiles * Math.Max(input.shape[1], outputs) * sizeof(float) <= TrainingTileBytes && GemmKernel.IsSupported;
    }

    /// <summary>The convolution of a plain-layout <paramref name="input"/> by <paramref name="weight"/> [C_out, C_in, 3, 3] (contiguous), plus <paramref name="bias"/>.</summary>
    internal static Tensor ConvolveForTraining(Tensor input, Tensor weight, Tensor? bias, long channelBlock = ChannelBlock) =>
        ByTiles(input, weight, bias, Pass.Forward, weight.shape[0], channelBlock);

    /// <summary>
    /// The gradient [B, C_in, H, W] of the input of the convolution by <paramref name="weight"/> [C_out, C_in, 3, 3], from
    /// the gradient of its output <paramref name="gradOutput"/> [B, C_out, H, W]: the convolution of the output's gradient
    /// by the weight flipped and transposed, whose transform is the weight's with elements exchanged (no copy of the weight).
    /// </summary>
    internal static Tensor InputGradientForTraining(Tensor gradOutput, Tensor weight, long channelBlock = ChannelBlock) =>
        ByTiles(gradOutput, weight, null, Pass.InputGradient, weight.shape[1], channelBlock);

    // `source` [B, C, H, W] (the input, or the output's gradient) through its tiles V, the pass's products M and the output
    // transform, to [B, outputs, H, W].
    private static Tensor ByTiles(Tensor source, Tensor weight, Tensor? bias, Pass pass, long outputs, long channelBlock)
    {
        int side = TileSide(source);
        var shape = TrainingShape(source, side, source.shape[1], outputs);
        long tiles = source.shape[0] * shape.TilesH * shape.TilesW;
        using var v = Tiles(source, shape, side);
        using var m = empty([Elements(side), tiles, outputs], ScalarType.Float32);
        using var result = empty([source.shape[0], shape.Height, shape.Width, outputs], ScalarType.Float32);
        float* mp = KernelTensors.Address(m), y = KernelTensors.Address(result), b = bias is null ? null : KernelTensors.Address(bias);
        var products = new Products(pass, side, KernelTensors.Address(weight), KernelTensors.Address(v), null, mp, tiles, weight.shape[1], weight.shape[0],
            channelBlock, Threads);
        products.RunOnMicroKernel();
        if (side == 4)
        {
            var transform = new LargeOutputTransform(mp, y, b, shape, tiles, Threads);
            KernelThreads.Run(Threads, ref transform);
        }
        else
        {
            var transform = new OutputTransform(mp, y, b, shape, 0, outputs, 0, tiles, Threads);
            KernelThreads.Run(Threads, ref transform);
        }
        return Plain(result);
    }

    /// <summary>
    /// The gradient [C_out, C_in, 3, 3] of the weight from the convolution's <paramref name="input"/> and the gradient of its
    /// output, as <see cref="WeightGradient"/> makes it (F(3×3, 2×2)), with the sums' transform back to 3×3 in registers.
    /// </summary>
    internal static Tensor WeightGradientForTraining(Tensor input, Tensor gradOutput, long channelBlock = ChannelBlock)
    {
        long cin = input.shape[1], cout = gradOutput.shape[1];
        int side = TileSide(input);
        var shape = TrainingShape(input, side, cin, cout);
        long tiles = input.shape[0] * shape.TilesH * shape.TilesW;
        using var v = Tiles(input, shape, side);
        using var dy = ChannelsLast(gradOutput);
        using var yHat = empty([Elements(side), tiles, cout], ScalarType.Float32);
        if (side == 4)
        {
            var gradients = new LargeOutputGradientTransform(KernelTensors.Address(dy), KernelTensors.Address(yHat), shape, tiles, Threads);
            KernelThreads.Run(Threads, ref gradients);
        }
        else
        {
            using var zeroRow = zeros(cout, ScalarType.Float32);
            var gradients = new OutputGradientTransform(KernelTensors.Address(dy), KernelTensors.Address(zeroRow), KernelTensors.Address(yHat), shape, 0, tiles, tiles, Threads);
            KernelThreads.Run(Threads, ref gradients);
        }
        var gradWeight = empty([cout, cin, 3, 3], ScalarType.Float32);
        // S[k] = Ŷ[k]ᵀ·V[k]: C_out × C_in, a sum over every tile, then Gᵀ·S·G into the gradient.
        var products = new Products(Pass.WeightGradient, side, KernelTensors.Address(gradWeight), KernelTensors.Address(v), KernelTensors.Address(yHat), null,
            tiles, cin, cout, channelBlock, Threads);
        products.RunOnMicroKernel();
        return gradWeight;
    }

    private static int Threads => Math.Max(1, get_num_threads());

    /// <summary>
    /// Outputs a tile side in the tiled passes on an input [B, C, H, W]: 4, F(4×4, 3×3), where both sides are multiples of 4
    /// and the image has at least <see cref="LargeTilePositions"/> positions; otherwise 2, F(2×2, 3×3).
    /// </summary>
    internal static int TileSide(Tensor input) =>
        input.shape[2] % 4 == 0 && input.shape[3] % 4 == 0 && input.shape[2] * input.shape[3] >= LargeTilePositions ? 4 : 2;

    // From 32×32, where an image has 64 tiles of 4×4, each of the 36 products as many rows: forward and backward of a layer
    // at batch 1 took 0.69–0.78× F(2×2, 3×3)'s time at 32×32 and 64×64, 0.88–1.09× at 16×16, where the 16 rows a product
    // leave the weight's transform (36 elements a kernel) as large as the products saved (AMD EPYC Zen 4,
    // docs/performance.md, twenty-second session).
    private const long LargeTilePositions = 32 * 32;

    private static int Elements(int side) => side == 4 ? LargeTileElements : TileElements;

    private static Shape TrainingShape(Tensor input, int side, long cin, long cout) =>
        new(input.shape[2], input.shape[3], (input.shape[2] + side - 1) / side, (input.shape[3] + side - 1) / side, cin, cout);

    // V [16 or 36, tiles, C_in] of a plain-layout input (copied channels-last for the transform), every tile of the batch.
    private static Tensor Tiles(Tensor source, Shape shape, int side)
    {
        using var nhwc = ChannelsLast(source);
        long tiles = nhwc.shape[0] * shape.TilesH * shape.TilesW;
        var v = empty([Elements(side), tiles, shape.Cin], ScalarType.Float32);
        using var zeroRow = zeros(shape.Cin, ScalarType.Float32);
        float* x = KernelTensors.Address(nhwc), z = KernelTensors.Address(zeroRow), vp = KernelTensors.Address(v);
        if (side == 4)
        {
            var inputs = new LargeInputTransform(x, z, vp, shape, tiles, Threads);
            KernelThreads.Run(Threads, ref inputs);
        }
        else
        {
            var inputs = new InputTransform(x, z, vp, shape, 0, tiles, tiles * shape.Cin, Threads);
            KernelThreads.Run(Threads, ref inputs);
        }
        return v;
    }

    // G·g·Gᵀ of sixteen consecutive kernels of a plain weight (144 floats at `g`, 9 a kernel) into U[k] = u + k·`kStride`,
    // one lane a kernel. The taps come out of a 16 × 16 transpose (through `rows`) whose rows start 9 floats apart; its last
    // row is read from 7 floats early and shifted back, so nothing past the sixteenth kernel is read, even at the end of the
    // weight. In float32, unlike inference's TransformKernels (float64, rounded once, its taps permuted out of the nine
    // loads): 1.7–2.6× faster, out of the cache and in it (twenty-first session, AMD EPYC Zen 4), and the error against
    // float64 stays that of the tests' cases (TrainingConvolutionFunctionTests).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformPlainKernels(float* g, float* rows, float* u, long kStride)
    {
        Transposes.Transpose16(g, 9, rows, Lanes, lastRowEarly: true);
        var half = Vector512.Create(0.5f);
        Vector512<float> g00 = Vector512.Load(rows), g01 = Vector512.Load(rows + Lanes), g02 = Vector512.Load(rows + 2 * Lanes);
        Vector512<float> g10 = Vector512.Load(rows + 3 * Lanes), g11 = Vector512.Load(rows + 4 * Lanes), g12 = Vector512.Load(rows + 5 * Lanes);
        Vector512<float> g20 = Vector512.Load(rows + 6 * Lanes), g21 = Vector512.Load(rows + 7 * Lanes), g22 = Vector512.Load(rows + 8 * Lanes);
        Vector512<float> s0 = g00 + g20, s1 = g01 + g21, s2 = g02 + g22;
        KernelRow(g00, g01, g02, u, kStride, half);
        KernelRow((s0 + g10) * half, (s1 + g11) * half, (s2 + g12) * half, u + 4 * kStride, kStride, half);
        KernelRow((s0 - g10) * half, (s1 - g11) * half, (s2 - g12) * half, u + 8 * kStride, kStride, half);
        KernelRow(g20, g21, g22, u + 12 * kStride, kStride, half);
    }

    // One row (a0, a1, a2) of G·g times Gᵀ: (a0, ½(a0 + a1 + a2), ½(a0 − a1 + a2), a2).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void KernelRow(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, float* u, long k, Vector512<float> half)
    {
        var sum = a0 + a2;
        a0.Store(u);
        ((sum + a1) * half).Store(u + k);
        ((sum - a1) * half).Store(u + 2 * k);
        a2.Store(u + 3 * k);
    }

    // A contiguous [B, C, H, W] copied to a contiguous [B, H, W, C], or back, by 16 × 16 register transposes spread over the
    // threads, where libtorch copies a permuted tensor element by element: the copies into these passes took 46–52 ms of a
    // 256 px SD 1.5 training step that way, 19–24 ms this way (AMD EPYC Zen 4, twenty-second session).
    private static Tensor ChannelsLast(Tensor plain)
    {
        var channelsLast = empty([plain.shape[0], plain.shape[2], plain.shape[3], plain.shape[1]], ScalarType.Float32);
        var work = new LayoutTranspose(KernelTensors.Address(plain), KernelTensors.Address(channelsLast), plain.shape[0], plain.shape[1],
            plain.shape[2] * plain.shape[3], Threads);
        KernelThreads.Run(Threads, ref work);
        return channelsLast;
    }

    private static Tensor Plain(Tensor channelsLast)
    {
        var plain = empty([channelsLast.shape[0], channelsLast.shape[3], channelsLast.shape[1], channelsLast.shape[2]], ScalarType.Float32);
        var work = new LayoutTranspose(KernelTensors.Address(channelsLast), KernelTensors.Address(plain), channelsLast.shape[0],
            channelsLast.shape[1] * channelsLast.shape[2], channelsLast.shape[3], Threads);
        KernelThreads.Run(Threads, ref work);
        return plain;
    }

    // Each of `batch` matrices [rows, columns] at `source` to [columns, rows] at `target`, a share of the columns a part.
    private readonly struct LayoutTranspose(float* source, float* target, long batch, long rows, long columns, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (firstGroup, groups) = KernelTensors.Share((columns + Lanes - 1) / Lanes, parts, part);
            long first = firstGroup * Lanes, count = Math.Min(groups * Lanes, columns - first);
            if (count <= 0) return;
            for (long b = 0; b < batch; b++)
                Transposes.Transpose(source + b * rows * columns + first, columns, count, rows, target + b * rows * columns + first * rows, rows);
        }
    }

    private enum Pass { Forward, InputGradient, WeightGradient }

    // A pass's 16 or 36 products, each thread taking a share of the weight's channels — output channels, or input channels for
    // the input's gradient, whose products sum over the output channels — and going through them a block at a time: it
    // transforms the block's weight into U (or, for the weight's gradient, takes the block's sums S back to 3×3) just
    // before or after the block's products, so that U and S stay in the last-level cache instead of making three passes
    // over memory each (U of a 1280 → 1280 layer is 105 MB). Each product runs on one thread's micro-kernel. `kernels` is
    // the weight [C_out, C_in, 3, 3] the forward and the input's gradient read, or the weight's gradient that pass writes.
    private readonly struct Products(Pass pass, int side, float* kernels, float* v, float* yHat, float* m, long tiles, long cin, long cout, long block,
        int parts) : IPartitionedWork
    {
        private readonly int _elements = Elements(side);

        // The micro-kernel runs as libtorch's brgemm only while oneDNN's switch is on (training turns it off on AMD's CPUs
        // for the convolutions' sake); while a OneDnn.Without call holds the switch off the products are MKL's, the same to
        // float32 rounding.
        public void RunOnMicroKernel()
        {
            bool entered = OneDnn.TryEnterEnabled();
            try { KernelThreads.Run(parts, ref Unsafe.AsRef(in this)); }
            finally { if (entered) OneDnn.ExitEnabled(); }
        }

        public void Run(int part)
        {
            long channels = pass == Pass.InputGradient ? cin : cout;
            var (firstGroup, groups) = KernelTensors.Share(channels / Lanes, parts, part);
            long first = firstGroup * Lanes, end = first + groups * Lanes;
            long blockFloats = _elements * block * (pass == Pass.InputGradient ? cout : cin);
            float* scratch = KernelTensors.AllocateFloats(blockFloats, "Winograd weight block");
            // Sixteen kernels' taps on their way through a 16 × 16 transpose: the weight's (in its first half) for U, or the
            // gradient's 9 rows padded to 16 (the padding's transposes are not stored) and the 16 kernels they become.
            float* staging = stackalloc float[2 * Lanes * Lanes];
            try
            {
                for (long c0 = first; c0 < end; c0 += block)
                {
                    long n = Math.Min(block, end - c0);
                    switch (pass)
                    {
                        case Pass.Forward: Forward(c0, n, scratch, staging); break;
                        case Pass.InputGradient: InputGradient(c0, n, scratch, staging); break;
                        default: WeightGradient(c0, n, scratch, staging); break;
                    }
                }
            }
            finally { NativeMemory.AlignedFree(scratch); }
        }

        // Output channels [o0, o0 + n): U [16 or 36, n, C_in], then M[k][:, o0…] = V[k]·U[k]ᵀ.
        private void Forward(long o0, long n, float* u, float* rows)
        {
            for (long o = 0; o < n; o++)
                for (long i = 0; i < cin; i += Lanes)
                {
                    float* g = kernels + ((o0 + o) * cin + i) * 9;
                    if (side == 4) TransformPlainKernelsLarge(g, rows, u + o * cin + i, n * cin, flipped: false);
                    else TransformPlainKernels(g, rows, u + o * cin + i, n * cin);
                }
            for (int k = 0; k < _elements; k++)
                GemmKernel.Multiply(tiles, n, cin, v + k * tiles * cin, cin, false, u + k * n * cin, cin, true, m + k * tiles * cout + o0, cout, false, threads: 1);
        }

        // Input channels [i0, i0 + n): U [16 or 36, C_out, n] of the weight turned by 180°, then M[k][:, i0…] = V[k]·U[k], V
        // the output gradient's tiles. F(2×2, 3×3) takes the turned weight's U as the weight's with elements exchanged (U[π k]);
        // F(4×4, 3×3)'s points are not symmetric that way, so it transforms the turned kernels.
        private void InputGradient(long i0, long n, float* u, float* rows)
        {
            for (long o = 0; o < cout; o++)
                for (long i = 0; i < n; i += Lanes)
                {
                    float* g = kernels + (o * cin + i0 + i) * 9;
                    if (side == 4) TransformPlainKernelsLarge(g, rows, u + o * n + i, cout * n, flipped: true);
                    else TransformPlainKernels(g, rows, u + o * n + i, cout * n);
                }
            for (int k = 0; k < _elements; k++)
                GemmKernel.Multiply(tiles, n, cout, v + k * tiles * cout, cout, false, u + (side == 4 ? k : FlippedElement[k]) * cout * n, n, false,
                    m + k * tiles * cin + i0, cin, false, threads: 1);
        }

        // Output channels [o0, o0 + n): S[k] = Ŷ[k][:, o0…]ᵀ·V[k] [n, C_in], then the gradient's rows Gᵀ·S·G.
        private void WeightGradient(long o0, long n, float* sums, float* taps)
        {
            for (int k = 0; k < _elements; k++)
                GemmKernel.Multiply(n, cin, tiles, yHat + k * tiles * cout + o0, cout, true, v + k * tiles * cin, cin, false, sums + k * n * cin, cin, false, threads: 1);
            float* kernelRows = taps + Lanes * Lanes;
            for (long o = 0; o < n; o++)
                for (long i = 0; i < cin; i += Lanes)
                {
                    if (side == 4) TransformLargeSums(sums + o * cin + i, n * cin, taps);
                    else TransformSums(sums + o * cin + i, n * cin, taps);
                    StoreKernels(taps, kernelRows, kernels + ((o0 + o) * cin + i) * 9);
                }
        }
    }

    // taps[t][lane] = (Gᵀ·S·G)[t / 3, t % 3] for the 4×4 sums S[4r + c] = s[(4r + c)·k + lane], G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformSums(float* s, long k, float* taps)
    {
        var half = Vector512.Create(0.5f);
        // Gᵀ·S, column by column: rows (s0 + ½(s1 + s2), ½(s1 − s2), ½(s1 + s2) + s3).
        var (a0, b0, c0) = Combine(Vector512.Load(s), Vector512.Load(s + 4 * k), Vector512.Load(s + 8 * k), Vector512.Load(s + 12 * k), half);
        var (a1, b1, c1) = Combine(Vector512.Load(s + k), Vector512.Load(s + 5 * k), Vector512.Load(s + 9 * k), Vector512.Load(s + 13 * k), half);
        var (a2, b2, c2) = Combine(Vector512.Load(s + 2 * k), Vector512.Load(s + 6 * k), Vector512.Load(s + 10 * k), Vector512.Load(s + 14 * k), half);
        var (a3, b3, c3) = Combine(Vector512.Load(s + 3 * k), Vector512.Load(s + 7 * k), Vector512.Load(s + 11 * k), Vector512.Load(s + 15 * k), half);
        // (Gᵀ·S)·G, row by row, by the same combination of its four columns.
        Store(Combine(a0, a1, a2, a3, half), taps);
        Store(Combine(b0, b1, b2, b3, half), taps + 3 * Lanes);
        Store(Combine(c0, c1, c2, c3, half), taps + 6 * Lanes);

        static void Store((Vector512<float> First, Vector512<float> Second, Vector512<float> Third) row, float* target)
        {
            row.First.Store(target);
            row.Second.Store(target + Lanes);
            row.Third.Store(target + 2 * Lanes);
        }
    }

    // Sixteen kernels' 9 taps (rows of `taps`, a lane a kernel) to 144 consecutive floats at `g`: transposed into `rows`,
    // whose rows (9 taps and 7 floats the next row's store overwrites) are stored in order, the last one's 9 taps alone.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreKernels(float* taps, float* rows, float* g)
    {
        Transposes.Transpose16(taps, Lanes, rows, Lanes);
        for (int r = 0; r < Lanes - 1; r++) Vector512.Load(rows + r * Lanes).Store(g + 9 * r);
        Vector256.Load(rows + (Lanes - 1) * Lanes).Store(g + 9 * (Lanes - 1));
        g[9 * Lanes - 1] = rows[(Lanes - 1) * Lanes + 8];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>) Combine(Vector512<float> s0, Vector512<float> s1, Vector512<float> s2,
        Vector512<float> s3, Vector512<float> half)
    {
        var sum = s1 + s2;
        return (s0 + sum * half, (s1 - s2) * half, sum * half + s3);
    }
}
