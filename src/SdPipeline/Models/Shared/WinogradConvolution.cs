using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// A 3×3, stride 1, padding 1 convolution of a channels-last float32 input by Winograd's F(2×2, 3×3): each 2×2 block
/// of outputs is formed from a 4×4 input tile with 16 multiplications per channel pair instead of 36, so the GEMM work
/// is 4/9 of a direct convolution's. The transforms of the input and output are additions and subtractions only; the
/// weight's transform (halves of sums of three) is made in float64 and rounded once.
/// </summary>
// The kernels' stack buffers are written before they are read; zeroing them took most of the weight transform's time.
[SkipLocalsInit]
internal static unsafe partial class WinogradConvolution
{
    private const int Lanes = 16;
    private const int TileElements = 16;

    /// <summary>Whether this CPU can run the transforms.</summary>
    public static bool IsSupported => Avx512F.IsSupported;

    /// <summary>
    /// Whether <paramref name="conv"/> on <paramref name="input"/> can run here: a 3×3 kernel, stride 1, padding 1 with
    /// zeros, no dilation or groups; channel counts multiples of 16; float32 on the CPU, the input [B, C, H, W] stored
    /// channels-last; nothing that needs a gradient.
    /// </summary>
    public static bool Applies(Tensor input, Conv2d conv) => KernelTensors.ChannelsLast(input) && Fits(input, conv);

    /// <summary>
    /// Whether <see cref="ConvolvePlain(Tensor, Conv2d)"/> can run <paramref name="conv"/> on <paramref name="input"/>: as
    /// <see cref="Applies"/> asks, but the input contiguous in the plain layout.
    /// </summary>
    public static bool AppliesToPlain(Tensor input, Conv2d conv) => input.is_contiguous() && Fits(input, conv);

    /// <summary>
    /// What <see cref="Applies"/> asks of the layer and its input, but the input's layout.
    /// </summary>
    internal static bool Fits(Tensor input, Conv2d conv)
    {
        if (conv.weight is not { } weight) return false;
        if (conv.transposed || conv.groups != 1 || conv.padding_type is not null || conv.padding is not [1, 1]
            || conv.stride is not [1, 1] || conv.dilation is not [1, 1] || conv.padding_mode != PaddingModes.Zeros) return false;
        if (torch.is_grad_enabled() && (input.requires_grad || weight.requires_grad || conv.bias is { requires_grad: true })) return false;
        return FitsTensors(input, weight, conv.bias);
    }

    /// <summary>
    /// What the kernel asks of the tensors themselves, for a layer (<see cref="Fits"/>) or training's function
    /// (<see cref="TrainingConvolutionFunction"/>) alike: AVX-512; a non-empty [B, C_in, H, W] float32 CPU input; a
    /// [C_out, C_in, 3, 3] weight, plain or channels-last, with both channel counts multiples of 16; a contiguous bias or none.
    /// </summary>
    internal static bool FitsTensors(Tensor input, Tensor weight, Tensor? bias)
    {
        if (!IsSupported || input.dim() != 4 || input.numel() == 0) return false;
        if (weight.dim() != 4 || weight.shape[2] != 3 || weight.shape[3] != 3 || weight.shape[1] != input.shape[1]
            || weight.shape[0] % Lanes != 0 || weight.shape[1] % Lanes != 0) return false;
        if (!KernelTensors.Addressable(input)) return false;
        if (!KernelTensors.Addressable(weight) || !(weight.is_contiguous() || KernelTensors.ChannelsLast(weight))) return false;
        return bias is null || (KernelTensors.Addressable(bias) && bias.is_contiguous());
    }

    /// <summary>
    /// <paramref name="conv"/> applied to <paramref name="input"/> (check <see cref="Applies"/> first); the result is
    /// stored channels-last, as oneDNN's would be.
    /// </summary>
    public static Tensor Convolve(Tensor input, Conv2d conv) =>
        Convolve(input, conv.weight!, conv.bias, ChunkBytes, WeightBytes, inScratch: true, productsByKernel: BatchedProduct.Preferred);

    /// <summary>
    /// <paramref name="conv"/> applied to a plain-layout <paramref name="input"/> (<see cref="AppliesToPlain"/> first): the input
    /// copied channels-last, convolved in chunks of up to <see cref="PlainInputChunkBytes"/>, the result copied back to
    /// the plain layout.
    /// </summary>
    /// <remarks>
    /// For the UNet's 16×16 level on AMD's CPUs (<see cref="Convolutions.PrefersChannelsLastWinograd"/>), where
    /// <see cref="PlainWinogradConvolution"/> puts fewer tiles in a GEMM than its lanes hold; the two copies are of
    /// feature maps of at most 16 MB there.
    /// </remarks>
    public static Tensor ConvolvePlain(Tensor input, Conv2d conv) => ConvolvePlain(input, conv, PlainInputChunkBytes, PlainInputWeightBytes);

    /// <summary>
    /// A plain-layout <paramref name="input"/> convolved by <paramref name="weight"/> [C_out, C_in, 3, 3] (contiguous), plus
    /// <paramref name="bias"/>: <see cref="ConvolvePlain(Tensor, Conv2d)"/> for tensors rather than a layer, with
    /// <see cref="Fits(Tensor, Conv2d)"/>'s conditions checked by the caller (<see cref="TrainingConvolutionFunction"/>).
    /// </summary>
    internal static Tensor ConvolvePlain(Tensor input, Tensor weight, Tensor? bias,
        long chunkBytes = PlainInputChunkBytes, long weightBytes = PlainInputWeightBytes)
    {
        using var nhwc = input.permute(0, 2, 3, 1).contiguous();
        using var channelsLast = nhwc.permute(0, 3, 1, 2);
        using var output = Convolve(channelsLast, weight, bias, chunkBytes, weightBytes, inScratch: false, productsByKernel: false);
        return output.contiguous();
    }

    /// <summary>
    /// The gradient [C_out, C_in, 3, 3] of a 3×3, stride-1, padding-1 convolution's weight, from its plain-layout
    /// <paramref name="input"/> [B, C_in, H, W] and the gradient of its output <paramref name="gradOutput"/> [B, C_out, H, W]
    /// (channel counts multiples of 16), by Winograd's F(3×3, 2×2), the transpose of the forward's algorithm: per 2×2
    /// output tile, the output's gradient transformed as A·dY·Aᵀ and the input tile as the forward transforms it (Bᵀ·d·B),
    /// their products summed over every tile by 16 GEMMs of C_out × C_in, and the sums taken back to 3×3 by Gᵀ·M·G. That is
    /// 16 multiplications a tile and channel pair where im2col's GEMM makes 36.
    /// </summary>
    internal static Tensor WeightGradient(Tensor input, Tensor gradOutput, long chunkBytes = PlainInputChunkBytes)
    {
        long batch = input.shape[0], cin = input.shape[1], height = input.shape[2], width = input.shape[3], cout = gradOutput.shape[1];
        long tilesH = (height + 1) / 2, tilesW = (width + 1) / 2, tiles = batch * tilesH * tilesW;
        long chunk = Math.Min(tiles, TilesPerChunk(chunkBytes, cin, cout));
        using var x = ChannelsLast(input);
        using var dy = ChannelsLast(gradOutput);
        using var v = empty([TileElements, chunk, cin], ScalarType.Float32);
        using var yHat = empty([TileElements, chunk, cout], ScalarType.Float32);
        using var zeroRow = zeros(Math.Max(cin, cout), ScalarType.Float32);
        Tensor? sums = null;
        float* xp = KernelTensors.Address(x), dyp = KernelTensors.Address(dy), vp = KernelTensors.Address(v), yp = KernelTensors.Address(yHat);
        float* z = KernelTensors.Address(zeroRow);
        int threads = Math.Max(1, get_num_threads());
        var shape = new Shape(height, width, tilesH, tilesW, cin, cout);
        for (long first = 0; first < tiles; first += chunk)
        {
            long count = Math.Min(chunk, tiles - first);
            var inputs = new InputTransform(xp, z, vp, shape, first, count, chunk * cin, threads);
            KernelThreads.Run(threads, ref inputs);
            var gradients = new OutputGradientTransform(dyp, z, yp, shape, first, count, chunk, threads);
            KernelThreads.Run(threads, ref gradients);
            using var vChunk = v.narrow(1, 0, count);
            using var yChunk = yHat.narrow(1, 0, count).transpose(1, 2);
            if (sums is null) sums = bmm(yChunk, vChunk);
            else
            {
                using var products = bmm(yChunk, vChunk);
                sums.add_(products);
            }
        }
        // Gᵀ·M·G for every (output, input) channel pair: M[4r + c] is element (r, c) of the 4×4 sums.
        using var g = tensor(new float[] { 1, 0, 0, 0.5f, 0.5f, 0.5f, 0.5f, -0.5f, 0.5f, 0, 0, 1 }, [4, 3]);
        using var m = sums!.view(4, 4, cout, cin);
        using var transformed = einsum("ra,rcoi,cb->oiab", g, m, g);
        sums.Dispose();
        return transformed.contiguous();
    }

    // Tiles [first, first + count) of the output's gradient into Ŷ's slots 0…count−1, shared among the parts.
    private readonly struct OutputGradientTransform(float* dy, float* zeros, float* yHat, Shape shape, long first, long count, long chunk, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(count, parts, part);
            for (long t = from; t < from + share; t++) TransformOutputGradientTile(dy, zeros, yHat, shape, first + t, t, chunk);
        }
    }

    // Ŷ[k, slot, c] = (A·dY·Aᵀ)[k] for the 2×2 tile of the output's gradient at rows 2ty, 2ty+1 and columns 2tx, 2tx+1
    // (zero past the image's last row or column), A = [1 0; 1 1; 1 −1; 0 −1].
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformOutputGradientTile(float* dy, float* zeros, float* yHat, Shape s, long tile, long slot, long chunk)
    {
        long perImage = s.TilesH * s.TilesW;
        long image = tile / perImage, inImage = tile % perImage;
        long row0 = inImage / s.TilesW * 2, col0 = inImage % s.TilesW * 2;
        float* p00 = dy + ((image * s.Height + row0) * s.Width + col0) * s.Cout;
        bool secondRow = row0 + 1 < s.Height, secondCol = col0 + 1 < s.Width;
        float* p01 = secondCol ? p00 + s.Cout : zeros;
        float* p10 = secondRow ? p00 + s.Width * s.Cout : zeros;
        float* p11 = secondRow && secondCol ? p00 + (s.Width + 1) * s.Cout : zeros;
        long k = chunk * s.Cout;
        float* target = yHat + slot * s.Cout;
        for (long c = 0; c < s.Cout; c += Lanes)
        {
            var a = Vector512.Load(p00 + c); var b = Vector512.Load(p01 + c);
            var d = Vector512.Load(p10 + c); var e = Vector512.Load(p11 + c);
            // A·dY, row by row: [a b], [a+d b+e], [a−d b−e], [−d −e]; then each row [p q] times Aᵀ: [p, p+q, p−q, −q].
            float* o = target + c;
            Row(o, k, a, b);
            Row(o + 4 * k, k, a + d, b + e);
            Row(o + 8 * k, k, a - d, b - e);
            Row(o + 12 * k, k, -d, -e);
        }

        static void Row(float* o, long k, Vector512<float> p, Vector512<float> q)
        {
            p.Store(o);
            (p + q).Store(o + k);
            (p - q).Store(o + 2 * k);
            (-q).Store(o + 3 * k);
        }
    }

    // As above, with V's chunks and U's blocks at most `chunkBytes` and `weightBytes`: the tests make several of each
    // at small sizes.
    internal static Tensor ConvolvePlain(Tensor input, Conv2d conv, long chunkBytes, long weightBytes) =>
        ConvolvePlain(input, conv.weight!, conv.bias, chunkBytes, weightBytes);

    // The transformed tiles V and their products M (16 values a tile per channel) are made a chunk of tiles at a time, at
    // most 4 MiB each: small beside the activations, and in the second-level cache.
    private const long ChunkBytes = 4L << 20;

    // V's chunks and U's blocks for ConvolvePlain. A chunk's GEMM reads all of U's block, and V is made again for each
    // block unless one chunk holds every tile, so at the UNet's widths (640 to 2560 channels) the VAE's 4 MiB chunks and
    // 32 MiB blocks re-read U in many small products. On an AMD EPYC Zen 4 (docs/performance.md), batch 2: 1280 → 1280
    // at 16×16 took 84 ms in 4 MiB chunks, 71 ms in 24 MiB chunks and 64 MiB blocks (one chunk, two blocks), 64 ms with
    // U whole; 1280 → 1280 at 32×32 240, 195 and 189 ms. U whole (210 MB for 2560 → 1280) raised the SD 1.5 UNet
    // forward's peak by 0.06 GiB; 64 MiB blocks did not.
    internal const long PlainInputChunkBytes = 24L << 20;
    internal const long PlainInputWeightBytes = 64L << 20;

    private static long TilesPerChunk(long chunkBytes, long cin, long cout) => Math.Max(1, chunkBytes / (TileElements * sizeof(float) * Math.Max(cin, cout)));

    // U at most this large: a wider layer is computed in blocks of output channels, each block's U made and used in
    // turn. U is 16/9 of the weight: 210 MB for a 2560 → 1280 layer, which would be the largest transient of the SD 1.5
    // UNet forward, whose highest points are within 0.1 GiB of its weights and activations (docs/performance.md).
    private const long WeightBytes = 32L << 20;

    /// <summary>
    /// Output channels a block: all of them, or as few blocks of about equal size (multiples of 16) as keep U within
    /// <paramref name="weightBytes"/> (32 MiB unless given).
    /// </summary>
    internal static long OutputBlock(long cin, long cout, long weightBytes = WeightBytes)
    {
        long bytesPerOutput = TileElements * cin * sizeof(float);
        long blocks = (cout * bytesPerOutput + weightBytes - 1) / weightBytes;
        long perBlock = (cout + blocks - 1) / blocks;
        return Math.Min(cout, (perBlock + Lanes - 1) / Lanes * Lanes);
    }

    /// <summary>
    /// The 16 matrices G·g·Gᵀ of a [C_out, C_in, 3, 3] float32 weight as [16, C_out, C_in]: element
    /// (r, c) of the 4×4 transformed kernel of output channel o and input channel i at [4r + c, o, i]. Formed in
    /// float64 and rounded once. C_in must be a multiple of 16, and the weight dense (plain or channels-last).
    /// </summary>
    public static Tensor TransformWeight(Tensor weight) => Transform(weight, transposed: false);

    /// <summary>
    /// <see cref="TransformWeight"/>'s matrices transposed, as [16, C_in, C_out]: element (r, c) of the transformed kernel
    /// of input channel i and output channel o at [4r + c, i, o], the layout <see cref="BatchedProduct"/> reads as the
    /// right-hand operand of V·Uᵀ. The same values to the bit; C_out must be a multiple of 16.
    /// </summary>
    public static Tensor TransformWeightTransposed(Tensor weight) => Transform(weight, transposed: true);

    private static Tensor Transform(Tensor weight, bool transposed)
    {
        long cout = weight.shape[0], cin = weight.shape[1];
        var transformed = transposed ? empty([TileElements, cin, cout], ScalarType.Float32) : empty([TileElements, cout, cin], ScalarType.Float32);
        // The weight is addressed as stored, whatever the order of its strides.
        float* g = KernelTensors.FirstElement(weight), u = KernelTensors.Address(transformed);
        var work = new WeightTransform(g, u, cout, cin, weight.stride(), transposed, Math.Max(1, get_num_threads()));
        KernelThreads.Run(work.Parts, ref work);
        return transformed;
    }

    // Plain: sixteen input channels' kernels of one output channel a call, stored side by side. Transposed: sixteen output
    // channels' kernels of one input channel, the lanes gathered a weight row apart and stored side by side; a part takes
    // groups of sixteen output channels and walks their rows along the input channels, sixteen streams through the weight.
    private readonly struct WeightTransform(float* g, float* u, long cout, long cin, long[] stride, bool transposed, int parts) : IPartitionedWork
    {
        private readonly long _s0 = stride[0], _s1 = stride[1], _s2 = stride[2], _s3 = stride[3];
        public int Parts => parts;

        public void Run(int part)
        {
            if (transposed)
            {
                var (firstGroup, groups) = KernelTensors.Share(cout / Lanes, parts, part);
                for (long o = firstGroup * Lanes; o < (firstGroup + groups) * Lanes; o += Lanes)
                    for (long i = 0; i < cin; i++)
                        TransformKernels(g + o * _s0 + i * _s1, _s0, _s2, _s3, u + i * cout + o, cin * cout);
                return;
            }
            var (first, count) = KernelTensors.Share(cout, parts, part);
            for (long o = first; o < first + count; o++)
                for (long i = 0; i < cin; i += Lanes)
                    TransformKernels(g + o * _s0 + i * _s1, _s1, _s2, _s3, u + o * cin + i, cout * cin);
        }
    }

    // Sixteen input channels' kernels at once (lanes), G g Gᵀ in float64: G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]. Each half
    // of the lanes is widened, transformed and narrowed in registers, row by row of G g.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformKernels(float* g, long channelStride, long rowStride, long colStride, float* u, long kStride)
    {
        Vector512<float> g00, g01, g02, g10, g11, g12, g20, g21, g22;
        if (channelStride == 9 && rowStride == 3 && colStride == 1)
        {
            // A plain weight: the sixteen kernels are 144 consecutive floats, each tap's lanes permuted out of them.
            var v0 = Vector512.Load(g); var v1 = Vector512.Load(g + 16); var v2 = Vector512.Load(g + 32);
            var v3 = Vector512.Load(g + 48); var v4 = Vector512.Load(g + 64); var v5 = Vector512.Load(g + 80);
            var v6 = Vector512.Load(g + 96); var v7 = Vector512.Load(g + 112); var v8 = Vector512.Load(g + 128);
            g00 = PlainTap(0, v0, v1, v2, v3, v4, v5, v6, v7, v8); g01 = PlainTap(1, v0, v1, v2, v3, v4, v5, v6, v7, v8);
            g02 = PlainTap(2, v0, v1, v2, v3, v4, v5, v6, v7, v8); g10 = PlainTap(3, v0, v1, v2, v3, v4, v5, v6, v7, v8);
            g11 = PlainTap(4, v0, v1, v2, v3, v4, v5, v6, v7, v8); g12 = PlainTap(5, v0, v1, v2, v3, v4, v5, v6, v7, v8);
            g20 = PlainTap(6, v0, v1, v2, v3, v4, v5, v6, v7, v8); g21 = PlainTap(7, v0, v1, v2, v3, v4, v5, v6, v7, v8);
            g22 = PlainTap(8, v0, v1, v2, v3, v4, v5, v6, v7, v8);
        }
        else
        {
            // Channels-last (the input channels adjacent: one load a tap), or another dense order (two gathers a tap).
            var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * (int)channelStride;
            g00 = Tap(g, channelStride, lanes);
            g01 = Tap(g + colStride, channelStride, lanes);
            g02 = Tap(g + 2 * colStride, channelStride, lanes);
            g10 = Tap(g + rowStride, channelStride, lanes);
            g11 = Tap(g + rowStride + colStride, channelStride, lanes);
            g12 = Tap(g + rowStride + 2 * colStride, channelStride, lanes);
            g20 = Tap(g + 2 * rowStride, channelStride, lanes);
            g21 = Tap(g + 2 * rowStride + colStride, channelStride, lanes);
            g22 = Tap(g + 2 * rowStride + 2 * colStride, channelStride, lanes);
        }
        TransformHalf(g00.GetLower(), g01.GetLower(), g02.GetLower(), g10.GetLower(), g11.GetLower(), g12.GetLower(),
            g20.GetLower(), g21.GetLower(), g22.GetLower(), u, kStride);
        TransformHalf(g00.GetUpper(), g01.GetUpper(), g02.GetUpper(), g10.GetUpper(), g11.GetUpper(), g12.GetUpper(),
            g20.GetUpper(), g21.GetUpper(), g22.GetUpper(), u + Lanes / 2, kStride);
    }

    // Lane l of tap t is float 9l + t of the 144: lanes whose float is in 32q…32q+31 are permuted from v[2q] and v[2q+1]
    // (q = 0…3), the rest from v8. TapIndices[5t + q] are those permutes' indices, TapLanes[5t + q] their lanes.
    private static readonly Vector512<int>[] TapIndices = PlainTapPermutes(lanes: false).Select(v => v.AsInt32()).ToArray();
    private static readonly Vector512<float>[] TapLanes = PlainTapPermutes(lanes: true);

    private static Vector512<float>[] PlainTapPermutes(bool lanes)
    {
        var permutes = new Vector512<float>[45];
        for (int t = 0; t < 9; t++)
            for (int q = 0; q < 5; q++)
            {
                var values = new int[Lanes];
                for (int l = 0; l < Lanes; l++)
                {
                    int offset = 9 * l + t - 32 * q;
                    bool here = offset >= 0 && offset < 32;
                    values[l] = lanes ? (here ? -1 : 0) : (here ? offset : 0);
                }
                permutes[5 * t + q] = Vector512.Create(values).AsSingle();
            }
        return permutes;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> PlainTap(int t, Vector512<float> v0, Vector512<float> v1, Vector512<float> v2, Vector512<float> v3,
        Vector512<float> v4, Vector512<float> v5, Vector512<float> v6, Vector512<float> v7, Vector512<float> v8)
    {
        int i = 5 * t;
        var tap = Avx512F.PermuteVar16x32x2(v0, TapIndices[i], v1);
        tap = Vector512.ConditionalSelect(TapLanes[i + 1], Avx512F.PermuteVar16x32x2(v2, TapIndices[i + 1], v3), tap);
        tap = Vector512.ConditionalSelect(TapLanes[i + 2], Avx512F.PermuteVar16x32x2(v4, TapIndices[i + 2], v5), tap);
        tap = Vector512.ConditionalSelect(TapLanes[i + 3], Avx512F.PermuteVar16x32x2(v6, TapIndices[i + 3], v7), tap);
        return Vector512.ConditionalSelect(TapLanes[i + 4], Avx512F.PermuteVar16x32x2(v8, TapIndices[i + 4], v8), tap);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Tap(float* tap, long channelStride, Vector256<int> lanes) => channelStride == 1
        ? Vector512.Load(tap)
        : Vector512.Create(Avx2.GatherVector256(tap, lanes, 4), Avx2.GatherVector256(tap + 8 * channelStride, lanes, 4));

    // Eight lanes of G g Gᵀ: the rows of G g (from the kernel's columns), each row's four values (·Gᵀ) to U[4r + j].
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TransformHalf(Vector256<float> g00, Vector256<float> g01, Vector256<float> g02, Vector256<float> g10,
        Vector256<float> g11, Vector256<float> g12, Vector256<float> g20, Vector256<float> g21, Vector256<float> g22, float* u, long k)
    {
        var d00 = Avx512F.ConvertToVector512Double(g00); var d01 = Avx512F.ConvertToVector512Double(g01); var d02 = Avx512F.ConvertToVector512Double(g02);
        var d10 = Avx512F.ConvertToVector512Double(g10); var d11 = Avx512F.ConvertToVector512Double(g11); var d12 = Avx512F.ConvertToVector512Double(g12);
        var d20 = Avx512F.ConvertToVector512Double(g20); var d21 = Avx512F.ConvertToVector512Double(g21); var d22 = Avx512F.ConvertToVector512Double(g22);
        var half = Vector512.Create(0.5);
        TransformRow(d00, d01, d02, u, k);
        TransformRow((d00 + d10 + d20) * half, (d01 + d11 + d21) * half, (d02 + d12 + d22) * half, u + 4 * k, k);
        TransformRow((d00 - d10 + d20) * half, (d01 - d11 + d21) * half, (d02 - d12 + d22) * half, u + 8 * k, k);
        TransformRow(d20, d21, d22, u + 12 * k, k);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TransformRow(Vector512<double> a0, Vector512<double> a1, Vector512<double> a2, float* u, long k)
    {
        var half = Vector512.Create(0.5);
        Avx512F.ConvertToVector256Single(a0).Store(u);
        Avx512F.ConvertToVector256Single((a0 + a1 + a2) * half).Store(u + k);
        Avx512F.ConvertToVector256Single((a0 - a1 + a2) * half).Store(u + 2 * k);
        Avx512F.ConvertToVector256Single(a2).Store(u + 3 * k);
    }

    // The convolution of a channels-last input [B, C_in, H, W] by `weight`, plus bias; the result [B, C_out, H, W] stored
    // channels-last. V is made a chunk of tiles at a time (at most `chunkBytes`, in this thread's scratch block when
    // `inScratch`), U a block of output channels at a time; when one chunk holds every tile, V is made once for all blocks.
    private static Tensor Convolve(Tensor input, Tensor weight, Tensor? bias, long chunkBytes, long weightBytes, bool inScratch, bool productsByKernel)
    {
        long batch = input.shape[0], cin = input.shape[1], height = input.shape[2], width = input.shape[3];
        long cout = weight.shape[0];
        long tilesH = (height + 1) / 2, tilesW = (width + 1) / 2;
        long tiles = batch * tilesH * tilesW;
        long block = OutputBlock(cin, cout, weightBytes);
        long chunk = Math.Min(tiles, TilesPerChunk(chunkBytes, cin, block));
        using var nhwc = input.permute(0, 2, 3, 1);
        using var output = empty([batch, height, width, cout], ScalarType.Float32);
        long matrix = chunk * cin + MatrixPadding;
        using var scratch = inScratch ? Scratch().narrow(0, 0, TileElements * matrix) : empty(TileElements * matrix, ScalarType.Float32);
        using var v = scratch.as_strided([TileElements, chunk, cin], [matrix, cin, 1]);
        using var zeroRow = zeros(cin, ScalarType.Float32);
        float* x = KernelTensors.Address(nhwc), y = KernelTensors.Address(output);
        float* vp = KernelTensors.Address(scratch), z = KernelTensors.Address(zeroRow);
        float* b = bias is null ? null : KernelTensors.Address(bias);
        int threads = Math.Max(1, get_num_threads());
        var shape = new Shape(height, width, tilesH, tilesW, cin, cout);
        // libtorch's bmm gives these products to MKL's cblas_sgemm_batch, which runs its AMD code path there. On the
        // micro-kernel (BatchedProduct, under AMD's rules) the SD 1.5 VAE's encode at 256 px took 0.86 against 1.05 s and
        // its decode 1.83 against 2.29 s on an AMD EPYC Zen 4 (medians of four alternating processes each, every pair
        // faster); the plain-layout entry (the UNet's 16x16 level, training's larger maps) keeps bmm, where the UNet
        // forward was not faster (docs/performance.md, twenty-sixth session).
        for (long firstOut = 0; firstOut < cout; firstOut += block)
        {
            long outputs = Math.Min(block, cout - firstOut);
            using var weights = weight.narrow(0, firstOut, outputs);
            using var uT = TransposedU(weights, productsByKernel);
            for (long first = 0; first < tiles; first += chunk)
            {
                long count = Math.Min(chunk, tiles - first);
                if (firstOut == 0 || chunk < tiles)
                {
                    var inputs = new InputTransform(x, z, vp, shape, first, count, matrix, threads);
                    KernelThreads.Run(threads, ref inputs);
                }
                // M[k] = V[k]·U[k]ᵀ as one batched GEMM: libtorch runs the 16 products side by side, one a thread (16 GEMMs
                // called one by one, each split over the threads, took the VAE encode from 1.1 to 1.45 s in one run).
                using var vChunk = v.narrow(1, 0, count);
                using var m = productsByKernel ? BatchedProduct.Multiply(vChunk, uT) : bmm(vChunk, uT);
                var outputTransform = new OutputTransform(KernelTensors.Address(m), y, b, shape, firstOut, outputs, first, count, threads);
                KernelThreads.Run(threads, ref outputTransform);
            }
        }
        return output.permute(0, 3, 1, 2);
    }

    // U as the products read it, [16, C_in, outputs]: made in that layout for the micro-kernel, a transposed view for bmm.
    private static Tensor TransposedU(Tensor weights, bool forKernel)
    {
        if (forKernel) return TransformWeightTransposed(weights);
        using var transformed = TransformWeight(weights);
        return transformed.transpose(1, 2);
    }

    // Each thread keeps one block of ChunkBytes for V. Allocated per call, V and M between the activations raised the
    // VAE's peaks (encode 0.74–0.77 GiB against 0.73, decode 0.89 against 0.80–0.86, measured) through the allocator's fragmentation.
    [ThreadStatic] private static Tensor? t_scratch;

    private static Tensor Scratch() => t_scratch ??= empty(ChunkBytes / sizeof(float) + TileElements * MatrixPadding, ScalarType.Float32).DetachFromDisposeScope();

    // Floats between V's sixteen matrices beyond their size. A chunk's matrices were a power of two apart (512 tiles of
    // 128 channels: 256 KiB), so a tile's sixteen stores fell in one set of the L1 cache and, as the process's physical
    // pages happened to land, of the L2: the VAE encode's input transforms took 106 ms in such a process against 25–30 ms
    // (one process in four to eight). 64 floats put matrix k at k·256 bytes within a page: 21.7–24.2 ms in ten processes
    // of ten (AMD EPYC Zen 4, docs/performance.md, twenty-seventh session).
    private const long MatrixPadding = 64;

    private readonly record struct Shape(long Height, long Width, long TilesH, long TilesW, long Cin, long Cout);

    // Tiles [first, first + count) of the chunk into V's slots 0…count−1 (its matrices `matrix` floats apart), shared among the parts.
    private readonly struct InputTransform(float* x, float* zeros, float* v, Shape shape, long first, long count, long matrix, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(count, parts, part);
            for (long t = from; t < from + share; t++) TransformInputTile(x, zeros, v, shape, first + t, t, matrix);
        }
    }

    // The outputs of tiles [first, first + count) in output channels [firstOut, firstOut + outputs) from their products
    // M [16, count, outputs], shared among the parts.
    private readonly struct OutputTransform(float* m, float* y, float* bias, Shape shape, long firstOut, long outputs, long first, long count, int parts)
        : IPartitionedWork
    {
        public void Run(int part)
        {
            var (from, share) = KernelTensors.Share(count, parts, part);
            float* blockBias = bias is null ? null : bias + firstOut;
            for (long t = from; t < from + share; t++) TransformOutputTile(m, y + firstOut, blockBias, shape, outputs, first + t, t, count);
        }
    }

    // V[k, slot, c] = (Bᵀ d B)[k] for the 4×4 input tile d at rows 2ty−1…2ty+2, columns 2tx−1…2tx+2 (zero outside:
    // those positions read `zeros`, C_in zeros).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformInputTile(float* x, float* zeros, float* v, Shape s, long tile, long slot, long matrix)
    {
        float** d = stackalloc float*[16];
        InputTilePositions(x, zeros, s, tile, 2, d);
        long k = matrix;
        float* target = v + slot * s.Cin;
        for (long c = 0; c < s.Cin; c += Lanes)
        {
            // Bᵀ d, column by column.
            var t00 = Vector512.Load(d[0] + c) - Vector512.Load(d[8] + c);
            var t10 = Vector512.Load(d[4] + c) + Vector512.Load(d[8] + c);
            var t20 = Vector512.Load(d[8] + c) - Vector512.Load(d[4] + c);
            var t30 = Vector512.Load(d[4] + c) - Vector512.Load(d[12] + c);
            var t01 = Vector512.Load(d[1] + c) - Vector512.Load(d[9] + c);
            var t11 = Vector512.Load(d[5] + c) + Vector512.Load(d[9] + c);
            var t21 = Vector512.Load(d[9] + c) - Vector512.Load(d[5] + c);
            var t31 = Vector512.Load(d[5] + c) - Vector512.Load(d[13] + c);
            var t02 = Vector512.Load(d[2] + c) - Vector512.Load(d[10] + c);
            var t12 = Vector512.Load(d[6] + c) + Vector512.Load(d[10] + c);
            var t22 = Vector512.Load(d[10] + c) - Vector512.Load(d[6] + c);
            var t32 = Vector512.Load(d[6] + c) - Vector512.Load(d[14] + c);
            var t03 = Vector512.Load(d[3] + c) - Vector512.Load(d[11] + c);
            var t13 = Vector512.Load(d[7] + c) + Vector512.Load(d[11] + c);
            var t23 = Vector512.Load(d[11] + c) - Vector512.Load(d[7] + c);
            var t33 = Vector512.Load(d[7] + c) - Vector512.Load(d[15] + c);
            // (Bᵀ d) B, row by row: element (i, j) goes to V[4i + j].
            float* o = target + c;
            (t00 - t02).Store(o); (t01 + t02).Store(o + k); (t02 - t01).Store(o + 2 * k); (t01 - t03).Store(o + 3 * k);
            o += 4 * k;
            (t10 - t12).Store(o); (t11 + t12).Store(o + k); (t12 - t11).Store(o + 2 * k); (t11 - t13).Store(o + 3 * k);
            o += 4 * k;
            (t20 - t22).Store(o); (t21 + t22).Store(o + k); (t22 - t21).Store(o + 2 * k); (t21 - t23).Store(o + 3 * k);
            o += 4 * k;
            (t30 - t32).Store(o); (t31 + t32).Store(o + k); (t32 - t31).Store(o + 2 * k); (t31 - t33).Store(o + 3 * k);
        }
    }

    // The (side + 2)² positions of a tile's input, rows side·ty − 1… and columns side·tx − 1…, into `d` row by row (each
    // C_in channels-last floats; positions outside the image point at `zeros`, C_in zeros).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputTilePositions(float* x, float* zeros, Shape s, long tile, int side, float** d)
    {
        long perImage = s.TilesH * s.TilesW;
        long image = tile / perImage, inImage = tile % perImage;
        long row0 = inImage / s.TilesW * side - 1, col0 = inImage % s.TilesW * side - 1;
        float* imageBase = x + image * s.Height * s.Width * s.Cin;
        int n = side + 2;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                long r = row0 + i, c = col0 + j;
                d[i * n + j] = r >= 0 && r < s.Height && c >= 0 && c < s.Width ? imageBase + (r * s.Width + c) * s.Cin : zeros;
            }
    }

    // The 2×2 outputs Aᵀ M A (+ bias) of the tile whose products are M[k, slot, :], `outputs` channels from `y` on (a
    // position's channels C_out apart).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransformOutputTile(float* m, float* y, float* bias, Shape s, long outputs, long tile, long slot, long count)
    {
        long perImage = s.TilesH * s.TilesW;
        long image = tile / perImage, inImage = tile % perImage;
        long row0 = inImage / s.TilesW * 2, col0 = inImage % s.TilesW * 2;
        long k = count * outputs;
        float* source = m + slot * outputs;
        float* out00 = y + ((image * s.Height + row0) * s.Width + col0) * s.Cout;
        bool secondRow = row0 + 1 < s.Height, secondCol = col0 + 1 < s.Width;
        float* out01 = secondCol ? out00 + s.Cout : null;
        float* out10 = secondRow ? out00 + s.Width * s.Cout : null;
        float* out11 = secondRow && secondCol ? out10 + s.Cout : null;
        for (long c = 0; c < outputs; c += Lanes)
        {
            float* p = source + c;
            // Aᵀ M, column by column.
            var m00 = Vector512.Load(p); var m01 = Vector512.Load(p + k); var m02 = Vector512.Load(p + 2 * k); var m03 = Vector512.Load(p + 3 * k);
            var m10 = Vector512.Load(p + 4 * k); var m11 = Vector512.Load(p + 5 * k); var m12 = Vector512.Load(p + 6 * k); var m13 = Vector512.Load(p + 7 * k);
            var m20 = Vector512.Load(p + 8 * k); var m21 = Vector512.Load(p + 9 * k); var m22 = Vector512.Load(p + 10 * k); var m23 = Vector512.Load(p + 11 * k);
            var m30 = Vector512.Load(p + 12 * k); var m31 = Vector512.Load(p + 13 * k); var m32 = Vector512.Load(p + 14 * k); var m33 = Vector512.Load(p + 15 * k);
            var s00 = m00 + m10 + m20; var s01 = m01 + m11 + m21; var s02 = m02 + m12 + m22; var s03 = m03 + m13 + m23;
            var s10 = m10 - m20 - m30; var s11 = m11 - m21 - m31; var s12 = m12 - m22 - m32; var s13 = m13 - m23 - m33;
            var b = bias is null ? Vector512<float>.Zero : Vector512.Load(bias + c);
            // (Aᵀ M) A, row by row.
            (s00 + s01 + s02 + b).Store(out00 + c);
            if (out01 != null) (s01 - s02 - s03 + b).Store(out01 + c);
            if (out10 != null) (s10 + s11 + s12 + b).Store(out10 + c);
            if (out11 != null) (s11 - s12 - s13 + b).Store(out11 + c);
        }
    }
}
