using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

// Training's three products by F(2×2, 3×3) with every tile of the batch in one chunk and the 16 products of each on
// GemmKernel (oneDNN's brgemm micro-kernel) rather than libtorch's bmm, which gives them to MKL's AMD code path.
internal static unsafe partial class WinogradConvolution
{
    // The transformed tiles of the largest operand, 16 × tiles × channels, at most this large for TrainingFits: each pass
    // holds V and M whole (SD 1.5 at 256 px batch 1: 10.5 MB at 32×32 with 640 channels).
    private const long TrainingTileBytes = 24L << 20;

    // U, and the weight gradient's 16 sums, at most this large a block of output channels (a 1280 → 1280 layer's U is 105 MB).
    private const long TrainingWeightBytes = 32L << 20;

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
        long tiles = input.shape[0] * ((input.shape[2] + 1) / 2) * ((input.shape[3] + 1) / 2);
        return TileElements * tiles * Math.Max(input.shape[1], outputs) * sizeof(float) <= TrainingTileBytes && GemmKernel.IsSupported;
    }

    /// <summary>The convolution of a plain-layout <paramref name="input"/> by <paramref name="weight"/> [C_out, C_in, 3, 3], plus <paramref name="bias"/>.</summary>
    internal static Tensor ConvolveForTraining(Tensor input, Tensor weight, Tensor? bias, long weightBytes = TrainingWeightBytes)
    {
        long cin = input.shape[1], cout = weight.shape[0];
        var shape = TrainingShape(input, cin, cout);
        long tiles = input.shape[0] * shape.TilesH * shape.TilesW;
        using var x = input.permute(0, 2, 3, 1).contiguous();
        using var v = Tiles(x, shape);
        using var y = empty([input.shape[0], shape.Height, shape.Width, cout], ScalarType.Float32);
        float* vp = KernelTensors.Address(v), yp = KernelTensors.Address(y), b = bias is null ? null : KernelTensors.Address(bias);
        long block = OutputBlock(cin, cout, weightBytes);
        using var m = empty([TileElements, tiles, block], ScalarType.Float32);
        float* mp = KernelTensors.Address(m);
        for (long first = 0; first < cout; first += block)
        {
            long outputs = Math.Min(block, cout - first);
            using var weights = weight.narrow(0, first, outputs);
            using var u = TransformWeight(weights);
            float* up = KernelTensors.Address(u);
            // M[k] = V[k]·U[k]ᵀ: tiles × outputs.
            bool entered = OneDnn.TryEnterEnabled();
            try
            {
                var products = new TileProducts(new(tiles, outputs, cin, vp, tiles * cin, cin, false), new(0, 0, 0, up, outputs * cin, cin, true), false,
                    mp, tiles * outputs, outputs, false, Threads);
                KernelThreads.Run(Threads, ref products);
            }
            finally { ExitMicroKernel(entered); }
            var transform = new OutputTransform(mp, yp, b, shape, first, outputs, 0, tiles, Threads);
            KernelThreads.Run(Threads, ref transform);
        }
        return y.permute(0, 3, 1, 2).contiguous();
    }

    /// <summary>
    /// The gradient [B, C_in, H, W] of the input of the convolution by <paramref name="weight"/> [C_out, C_in, 3, 3], from
    /// the gradient of its output <paramref name="gradOutput"/> [B, C_out, H, W]: the convolution of the output's gradient
    /// by the weight flipped and transposed, whose transform is the weight's with elements exchanged (no copy of the weight).
    /// </summary>
    internal static Tensor InputGradientForTraining(Tensor gradOutput, Tensor weight, long weightBytes = TrainingWeightBytes)
    {
        long cout = weight.shape[0], cin = weight.shape[1];
        var shape = TrainingShape(gradOutput, cout, cin);
        long tiles = gradOutput.shape[0] * shape.TilesH * shape.TilesW;
        using var dy = gradOutput.permute(0, 2, 3, 1).contiguous();
        using var v = Tiles(dy, shape);
        using var m = empty([TileElements, tiles, cin], ScalarType.Float32);
        using var dx = empty([gradOutput.shape[0], shape.Height, shape.Width, cin], ScalarType.Float32);
        float* vp = KernelTensors.Address(v), mp = KernelTensors.Address(m);
        long block = OutputBlock(cin, cout, weightBytes);
        for (long first = 0; first < cout; first += block)
        {
            long outputs = Math.Min(block, cout - first);
            using var weights = weight.narrow(0, first, outputs);
            using var u = TransformWeight(weights);
            float* up = KernelTensors.Address(u);
            bool accumulate = first > 0;
            // M[k] (+)= V[k]·U[π k] over this block's channels of the output's gradient: tiles × C_in.
            bool entered = OneDnn.TryEnterEnabled();
            try
            {
                var products = new TileProducts(new(tiles, cin, outputs, vp + first, tiles * cout, cout, false), new(0, 0, 0, up, outputs * cin, cin, false), true,
                    mp, tiles * cin, cin, accumulate, Threads);
                KernelThreads.Run(Threads, ref products);
            }
            finally { ExitMicroKernel(entered); }
        }
        var transform = new OutputTransform(mp, KernelTensors.Address(dx), null, shape, 0, cin, 0, tiles, Threads);
        KernelThreads.Run(Threads, ref transform);
        return dx.permute(0, 3, 1, 2).contiguous();
    }

    /// <summary>
    /// The gradient [C_out, C_in, 3, 3] of the weight from the convolution's <paramref name="input"/> and the gradient of its
    /// output, as <see cref="WeightGradient"/> makes it (F(3×3, 2×2)), with the sums' transform back to 3×3 in registers.
    /// </summary>
    internal static Tensor WeightGradientForTraining(Tensor input, Tensor gradOutput, long weightBytes = TrainingWeightBytes)
    {
        long cin = input.shape[1], cout = gradOutput.shape[1];
        var shape = TrainingShape(input, cin, cout);
        long tiles = input.shape[0] * shape.TilesH * shape.TilesW;
        using var x = input.permute(0, 2, 3, 1).contiguous();
        using var v = Tiles(x, shape);
        using var dy = gradOutput.permute(0, 2, 3, 1).contiguous();
        using var yHat = empty([TileElements, tiles, cout], ScalarType.Float32);
        using var zeroRow = zeros(cout, ScalarType.Float32);
        var gradients = new OutputGradientTransform(KernelTensors.Address(dy), KernelTensors.Address(zeroRow), KernelTensors.Address(yHat), shape, 0, tiles, tiles, Threads);
        KernelThreads.Run(Threads, ref gradients);
        var gradWeight = empty([cout, cin, 3, 3], ScalarType.Float32);
        float* vp = KernelTensors.Address(v), yp = KernelTensors.Address(yHat), gp = KernelTensors.Address(gradWeight);
        long block = OutputBlock(cin, cout, weightBytes);
        using var sums = empty([TileElements, block, cin], ScalarType.Float32);
        float* sp = KernelTensors.Address(sums);
        for (long first = 0; first < cout; first += block)
        {
            long outputs = Math.Min(block, cout - first);
            // S[k] = Ŷ[k]ᵀ·V[k] for this block's output channels: outputs × C_in, a sum over every tile.
            bool entered = OneDnn.TryEnterEnabled();
            try
            {
                var products = new TileProducts(new(outputs, cin, tiles, yp + first, tiles * cout, cout, true), new(0, 0, 0, vp, tiles * cin, cin, false), false,
                    sp, outputs * cin, cin, false, Threads);
                KernelThreads.Run(Threads, ref products);
            }
            finally { ExitMicroKernel(entered); }
            var back = new SumsTransform(sp, gp + first * cin * 9, outputs, cin, Threads);
            KernelThreads.Run(Threads, ref back);
        }
        return gradWeight;
    }

    private static int Threads => Math.Max(1, get_num_threads());

    private static Shape TrainingShape(Tensor input, long cin, long cout) =>
        new(input.shape[2], input.shape[3], (input.shape[2] + 1) / 2, (input.shape[3] + 1) / 2, cin, cout);

    // V [16, tiles, C_in] of a channels-last input, every tile of the batch.
    private static Tensor Tiles(Tensor nhwc, Shape shape)
    {
        long tiles = nhwc.shape[0] * shape.TilesH * shape.TilesW;
        var v = empty([TileElements, tiles, shape.Cin], ScalarType.Float32);
        using var zeroRow = zeros(shape.Cin, ScalarType.Float32);
        var inputs = new InputTransform(KernelTensors.Address(nhwc), KernelTensors.Address(zeroRow), KernelTensors.Address(v), shape, 0, tiles, tiles, Threads);
        KernelThreads.Run(Threads, ref inputs);
        return v;
    }

    // The micro-kernel runs as libtorch's brgemm only while oneDNN's switch is on (training turns it off on AMD's CPUs for
    // the convolutions' sake), so the products hold it on (OneDnn.TryEnterEnabled); while a OneDnn.Without call holds the
    // switch off they are MKL's, the same to float32 rounding.
    private static void ExitMicroKernel(bool entered)
    {
        if (entered) OneDnn.ExitEnabled();
    }

    // One operand of the 16 products: element k's matrix at `first + k·step`, rows `stride` apart, stored transposed or not.
    // The left operand also carries the product's shape (rows × columns, depth terms).
    private readonly struct Operand(long rows, long columns, long depth, float* first, long step, long stride, bool transposed)
    {
        public readonly long Rows = rows, Columns = columns, Depth = depth, Step = step, Stride = stride;
        public readonly float* First = first;
        public readonly bool Transposed = transposed;
    }

    // C[k] (+)= A[k]·B[k] (B[π k] for the flipped weight) for the 16 tile elements, each product on one thread's micro-kernel
    // and the parts taking eight each: one wake-up of the threads for the 16, and each operand copied once.
    private readonly struct TileProducts(Operand a, Operand b, bool flipped, float* c, long cStep, long ldc, bool accumulate, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (first, count) = KernelTensors.Share(TileElements, parts, part);
            for (long k = first; k < first + count; k++)
            {
                long element = flipped ? FlippedElement[(int)k] : k;
                GemmKernel.Multiply(a.Rows, a.Columns, a.Depth, a.First + k * a.Step, a.Stride, a.Transposed, b.First + element * b.Step, b.Stride,
                    b.Transposed, c + k * cStep, ldc, accumulate, threads: 1);
            }
        }
    }

    // The weight's gradient rows [C_in, 3, 3] of each output channel of a block from its 16 sums S [16, outputs, C_in]:
    // Gᵀ·S·G per channel pair, sixteen input channels along the lanes, shared among the parts by output channel.
    private readonly struct SumsTransform(float* sums, float* gradWeight, long outputs, long cin, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (first, count) = KernelTensors.Share(outputs, parts, part);
            float* taps = stackalloc float[9 * Lanes];
            for (long o = first; o < first + count; o++)
                for (long i = 0; i < cin; i += Lanes)
                {
                    TransformSums(sums + o * cin + i, outputs * cin, taps);
                    Transposes.Transpose(taps, Lanes, Lanes, 9, gradWeight + (o * cin + i) * 9, 9);
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>, Vector512<float>) Combine(Vector512<float> s0, Vector512<float> s1, Vector512<float> s2,
        Vector512<float> s3, Vector512<float> half)
    {
        var sum = s1 + s2;
        return (s0 + sum * half, (s1 - s2) * half, sum * half + s3);
    }
}
