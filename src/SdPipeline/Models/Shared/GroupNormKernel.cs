using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// GroupNorm, optionally followed by SiLU in the same pass, for float32 CPU tensors in inference, on AVX-512. It serves
/// two layouts: the plain one (each group one contiguous block) and channels-last (channels adjacent at every
/// position), which libtorch normalises in one pass of sums and sums of squares — a variance that cancels
/// catastrophically where a group's mean is large against its spread, as on flat image regions (docs/performance.md).
/// Here the mean is summed first and the variance summed from the deviations, as libtorch does for the plain layout,
/// so channels-last convolutions can be used without that loss; and a resnet block's SiLU is applied while the
/// normalised values are still in registers instead of in a pass of its own.
/// </summary>
/// <remarks>
/// Sums are formed in float32 over runs of at most <see cref="Run"/> values and added in float64, so rounding does not
/// grow with the image. Results agree with <c>group_norm</c> (and <c>silu</c>) to float32 rounding, not bit for bit.
/// </remarks>
internal static unsafe class GroupNormKernel
{
    private const int Lanes = 16;
    private const int Run = 1024;      // plain layout: values summed in float32 before adding into float64
    private const int Positions = 64;  // channels-last: positions summed in float32 before adding into float64

    /// <summary>Whether this CPU can run the kernel.</summary>
    public static bool IsSupported => Avx512F.IsSupported;

    /// <summary>
    /// Whether the kernel serves <paramref name="norm"/> on <paramref name="input"/> [B, C, …]: float32 on the CPU,
    /// affine, nothing that needs a gradient, and either the plain layout or channels-last ([B, C, H, W] stored as
    /// [B, H, W, C], or [B, C, N] stored as [B, N, C]) with C a multiple of 16.
    /// </summary>
    public static bool Applies(Tensor input, GroupNorm norm)
    {
        if (!IsSupported || input.dim() < 3 || input.numel() == 0 || norm.weight is not { } weight || norm.bias is not { } bias) return false;
        if (torch.is_grad_enabled() && (input.requires_grad || weight.requires_grad || bias.requires_grad)) return false;
        long channels = input.shape[1];
        if (weight.numel() != channels || bias.numel() != channels || norm.num_groups <= 0 || channels % norm.num_groups != 0) return false;
        if (!KernelTensors.Addressable(input) || !KernelTensors.Addressable(weight) || !KernelTensors.Addressable(bias) || !weight.is_contiguous() || !bias.is_contiguous()) return false;
        return input.is_contiguous() || (KernelTensors.ChannelsLast(input) && channels % Lanes == 0);
    }

    /// <summary>
    /// GroupNorm of <paramref name="input"/> with <paramref name="norm"/>'s groups, epsilon and affine parameters,
    /// followed by SiLU when <paramref name="silu"/>; the result has the input's layout. Check <see cref="Applies"/>
    /// first: an input in neither layout is refused by <c>Tensor.bytes</c> (it throws), not read out of order.
    /// </summary>
    public static Tensor Normalize(Tensor input, GroupNorm norm, bool silu)
    {
        var shape = new Layout(input.shape[0], input.shape[1], input.numel() / (input.shape[0] * input.shape[1]), norm.num_groups);
        bool channelsLast = !input.is_contiguous();
        // A channels-last tensor is addressed through its view with the channels moved last, which is contiguous.
        using var stored = channelsLast ? ChannelsMovedLast(input) : input.alias();
        using var storedOutput = empty(stored.shape, ScalarType.Float32);
        float* x = KernelTensors.Address(stored), y = KernelTensors.Address(storedOutput), weight = KernelTensors.Address(norm.weight!), bias = KernelTensors.Address(norm.bias!);
        int threads = Math.Max(1, get_num_threads());
        float eps = (float)norm.eps;
        if (channelsLast) NormalizeChannelsLast(x, y, weight, bias, shape, eps, silu, threads);
        else NormalizePlain(x, y, weight, bias, shape, eps, silu, threads);
        return channelsLast ? storedOutput.permute(ChannelsBack(input.dim())) : storedOutput.alias();
    }

    private readonly record struct Layout(long Batch, long Channels, long Positions, long Groups)
    {
        public long ChannelsPerGroup => Channels / Groups;
    }

    // [B, C, d2, …] → [B, d2, …, C] and back.
    private static Tensor ChannelsMovedLast(Tensor input) =>
        input.permute([0, .. Enumerable.Range(2, (int)input.dim() - 2).Select(d => (long)d), 1]);

    private static long[] ChannelsBack(long dims) => [0, dims - 1, .. Enumerable.Range(1, (int)dims - 2).Select(d => (long)d)];

    // Each (sample, group) is one contiguous block of ChannelsPerGroup × Positions values.
    private static void NormalizePlain(float* x, float* y, float* weight, float* bias, Layout s, float eps, bool silu, int threads)
    {
        var work = new PlainGroups(x, y, weight, bias, s, eps, silu, (int)Math.Min(threads, s.Batch * s.Groups));
        KernelThreads.Run(work.Parts, ref work);
    }

    private readonly struct PlainGroups(float* x, float* y, float* weight, float* bias, Layout s, float eps, bool silu, int parts) : IPartitionedWork
    {
        public int Parts => parts;

        public void Run(int part)
        {
            long block = s.ChannelsPerGroup * s.Positions;
            var (first, count) = KernelTensors.Share(s.Batch * s.Groups, parts, part);
            for (long item = first; item < first + count; item++)
            {
                float* source = x + item * block, target = y + item * block;
                double mean = Sum(source, block) / block;
                double variance = SquaredDeviations(source, block, (float)mean) / block;
                float rstd = (float)(1.0 / Math.Sqrt(variance + eps));
                long firstChannel = item % s.Groups * s.ChannelsPerGroup;
                for (long c = 0; c < s.ChannelsPerGroup; c++)
                {
                    float scale = weight[firstChannel + c] * rstd;
                    float shift = bias[firstChannel + c] - (float)mean * scale;
                    Apply(source + c * s.Positions, target + c * s.Positions, s.Positions, scale, shift, silu);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double Sum(float* source, long count)
    {
        double total = 0;
        for (long start = 0; start < count; start += Run)
        {
            int n = (int)Math.Min(Run, count - start);
            float* p = source + start;
            var acc = Vector512<float>.Zero;
            int i = 0;
            for (; i + Lanes <= n; i += Lanes) acc += Vector512.Load(p + i);
            float partial = Vector512.Sum(acc);
            for (; i < n; i++) partial += p[i];
            total += partial;
        }
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double SquaredDeviations(float* source, long count, float mean)
    {
        double total = 0;
        var m = Vector512.Create(mean);
        for (long start = 0; start < count; start += Run)
        {
            int n = (int)Math.Min(Run, count - start);
            float* p = source + start;
            var acc = Vector512<float>.Zero;
            int i = 0;
            for (; i + Lanes <= n; i += Lanes)
            {
                var d = Vector512.Load(p + i) - m;
                acc = Avx512F.FusedMultiplyAdd(d, d, acc);
            }
            float partial = Vector512.Sum(acc);
            for (; i < n; i++) partial += (p[i] - mean) * (p[i] - mean);
            total += partial;
        }
        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Apply(float* source, float* target, long count, float scale, float shift, bool silu)
    {
        var a = Vector512.Create(scale);
        var b = Vector512.Create(shift);
        long i = 0;
        for (; i + Lanes <= count; i += Lanes)
        {
            var v = Avx512F.FusedMultiplyAdd(Vector512.Load(source + i), a, b);
            (silu ? Silu(v) : v).Store(target + i);
        }
        for (; i < count; i++)
        {
            float v = MathF.FusedMultiplyAdd(source[i], scale, shift);
            target[i] = silu ? v / (1f + MathF.Exp(-v)) : v;
        }
    }

    // Each sample is Positions rows of Channels adjacent values. Threads take equal runs of rows; each sums its rows per
    // channel, the runs' sums are added in a fixed order, so the result depends only on the thread count, as libtorch's.
    private static void NormalizeChannelsLast(float* x, float* y, float* weight, float* bias, Layout s, float eps, bool silu, int threads)
    {
        int channels = checked((int)s.Channels);
        int parts = (int)Math.Max(1, Math.Min(threads, s.Positions / Positions));
        double* sums = null;
        float* perChannel = null;
        Span<double> means = stackalloc double[checked((int)s.Groups)], variances = stackalloc double[(int)s.Groups];
        try
        {
            sums = (double*)NativeMemory.AlignedAlloc((nuint)((long)parts * channels * sizeof(double)), 64);
            perChannel = (float*)NativeMemory.AlignedAlloc((nuint)(2L * channels * sizeof(float)), 64);
            float* scales = perChannel, shifts = perChannel + channels;
            for (long b = 0; b < s.Batch; b++)
            {
                float* source = x + b * s.Positions * channels, target = y + b * s.Positions * channels;
                // Pass 1: per-channel sums → group means (held per channel in `shifts` for pass 2).
                var meanSums = new ChannelSums(source, s.Positions, channels, null, sums, parts);
                KernelThreads.Run(parts, ref meanSums);
                GroupStatistics(sums, parts, s, shifts, means);
                // Pass 2: per-channel sums of squared deviations from the group mean → variances.
                var deviationSums = new ChannelSums(source, s.Positions, channels, shifts, sums, parts);
                KernelThreads.Run(parts, ref deviationSums);
                GroupStatistics(sums, parts, s, null, variances);
                for (int c = 0; c < channels; c++)
                {
                    int g = (int)(c / s.ChannelsPerGroup);
                    float rstd = (float)(1.0 / Math.Sqrt(variances[g] + eps));
                    scales[c] = weight[c] * rstd;
                    shifts[c] = bias[c] - (float)means[g] * scales[c];
                }
                // Pass 3: scale, shift, SiLU.
                var rows = new ScaledRows(source, target, s.Positions, channels, scales, shifts, silu, parts);
                KernelThreads.Run(parts, ref rows);
            }
        }
        finally
        {
            NativeMemory.AlignedFree(sums);
            NativeMemory.AlignedFree(perChannel);
        }
    }

    // Each part's per-channel sums over its share of the positions, into its own row of `sums`.
    private readonly struct ChannelSums(float* source, long positions, int channels, float* means, double* sums, int parts) : IPartitionedWork
    {
        public void Run(int part) => SumRows(source, KernelTensors.Share(positions, parts, part), channels, means, sums + (long)part * channels);
    }

    private readonly struct ScaledRows(float* source, float* target, long positions, int channels, float* scales, float* shifts, bool silu, int parts) : IPartitionedWork
    {
        public void Run(int part)
        {
            var (first, count) = KernelTensors.Share(positions, parts, part);
            ApplyRows(source + first * channels, target + first * channels, count, channels, scales, shifts, silu);
        }
    }

    // Per-channel Σ x (means null) or Σ (x − mean[c])² over rows [first, first + count), into sums[c] in float64. Each
    // run of rows is read once per block of four channel vectors, whose sums stay in registers; the run (at most 128 KiB)
    // stays in the second-level cache for the blocks after the first.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumRows(float* source, (long First, long Count) rows, int channels, float* means, double* sums)
    {
        new Span<double>(sums, channels).Clear();
        for (long start = 0; start < rows.Count; start += Positions)
        {
            float* run = source + (rows.First + start) * channels;
            int count = (int)Math.Min(Positions, rows.Count - start);
            int c = 0;
            for (; c + 4 * Lanes <= channels; c += 4 * Lanes) SumBlock4(run, count, channels, c, means, sums);
            for (; c < channels; c += Lanes) SumBlock1(run, count, channels, c, means, sums);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Term(Vector512<float> v, float* means, int c)
    {
        if (means is null) return v;
        var d = v - Vector512.Load(means + c);
        return d * d;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumBlock4(float* run, int count, int channels, int c, float* means, double* sums)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int r = 0; r < count; r++)
        {
            float* row = run + (long)r * channels + c;
            a0 += Term(Vector512.Load(row), means, c);
            a1 += Term(Vector512.Load(row + Lanes), means, c + Lanes);
            a2 += Term(Vector512.Load(row + 2 * Lanes), means, c + 2 * Lanes);
            a3 += Term(Vector512.Load(row + 3 * Lanes), means, c + 3 * Lanes);
        }
        AddWide(a0, sums + c);
        AddWide(a1, sums + c + Lanes);
        AddWide(a2, sums + c + 2 * Lanes);
        AddWide(a3, sums + c + 3 * Lanes);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SumBlock1(float* run, int count, int channels, int c, float* means, double* sums)
    {
        var a = Vector512<float>.Zero;
        for (int r = 0; r < count; r++) a += Term(Vector512.Load(run + (long)r * channels + c), means, c);
        AddWide(a, sums + c);
    }

    // sums[0..16) += the sixteen float32 lanes, in float64.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddWide(Vector512<float> partial, double* sums)
    {
        (Vector512.Load(sums) + Avx512F.ConvertToVector512Double(partial.GetLower())).Store(sums);
        (Vector512.Load(sums + 8) + Avx512F.ConvertToVector512Double(partial.GetUpper())).Store(sums + 8);
    }

    // Adds the parts' per-channel sums by group into `groups` and divides by the group's size; with `means` non-null also writes
    // each channel's group mean there (as float32, the value the deviations are taken from).
    private static void GroupStatistics(double* sums, int parts, Layout s, float* means, Span<double> groups)
    {
        groups.Clear();
        long channels = s.Channels;
        for (int part = 0; part < parts; part++)
            for (long c = 0; c < channels; c++)
                groups[(int)(c / s.ChannelsPerGroup)] += sums[part * channels + c];
        double size = s.ChannelsPerGroup * s.Positions;
        for (int g = 0; g < groups.Length; g++) groups[g] /= size;
        if (means is not null)
            for (long c = 0; c < channels; c++) means[c] = (float)groups[(int)(c / s.ChannelsPerGroup)];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ApplyRows(float* source, float* target, long rows, int channels, float* scales, float* shifts, bool silu)
    {
        for (long r = 0; r < rows; r++)
        {
            float* from = source + r * channels, to = target + r * channels;
            for (int c = 0; c < channels; c += Lanes)
            {
                var v = Avx512F.FusedMultiplyAdd(Vector512.Load(from + c), Vector512.Load(scales + c), Vector512.Load(shifts + c));
                (silu ? Silu(v) : v).Store(to + c);
            }
        }
    }

    // x / (1 + e^−x), libtorch's form.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Silu(Vector512<float> v) => v / (Vector512<float>.One + Exp(-v));

    // e^t to about 1 ulp (Cephes' expf): t = n·ln 2 + r with ln 2 split in two so r is exact, a minimax polynomial
    // for e^r, and 2^n applied by VSCALEFPS, which overflows to ∞ and underflows to 0 without special cases.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Exp(Vector512<float> t)
    {
        // These operand orders keep a NaN a NaN (the second operand is returned when either is NaN).
        t = Avx512F.Min(Vector512.Create(150f), Avx512F.Max(Vector512.Create(-150f), t));
        var n = Avx512F.RoundScale(t * Vector512.Create(1.44269504088896341f), 0);
        var r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), t);
        r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500e-4f);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507e-3f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073e-3f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894e-2f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459e-1f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201e-1f));
        p = Avx512F.FusedMultiplyAdd(p, r * r, r + Vector512<float>.One);
        return Avx512F.Scale(p, n);
    }
}
