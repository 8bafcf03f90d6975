using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using SdPipeline.Training.Optimization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>The global gradient norm and the factor clipping scales every gradient by.</summary>
/// <param name="Norm">The L2 norm over every gradient; not finite when a gradient is not.</param>
/// <param name="Coefficient">
/// <c>min(1, maxNorm / (norm + 1e−6))</c> in float32, as <c>clip_grad_norm_</c> computes it; exactly 1 when clipping is off,
/// the norm is within the limit, or the norm is not finite (the caller refuses that step).
/// </param>
public readonly record struct GradientClip(double Norm, float Coefficient)
{
    /// <summary>No norm measured, nothing scaled.</summary>
    public static GradientClip None { get; } = new(double.NaN, 1f);
}

/// <summary>
/// Global gradient norm and clipping as <c>torch.nn.utils.clip_grad_norm_</c> does them, with the scaling left to
/// <see cref="Optimization.AdamW.Step"/>, which multiplies each gradient by the coefficient as it reads it: the same
/// float32 products as <c>clip_grad_norm_</c>'s in-place multiply, without a pass that reads and writes every gradient.
/// </summary>
/// <remarks>
/// At SD 1.5's size the gradients are 3.4 GB, so both passes are memory traffic: PyTorch's <c>clip_grad_norm_</c>
/// (per-tensor norms, then a multiply of every gradient) took 0.24 s a step on the Zen 4 of docs/performance.md, about
/// half of it each pass. Float32 CPU gradients are summed here in one pass on the threads, in float64, chunk by chunk in
/// a fixed order, so the norm does not depend on the thread count; others (CUDA, half precision) by libtorch's norm.
/// </remarks>
public static unsafe class GradientNorm
{
    /// <summary>
    /// The norm over every gradient of <paramref name="parameters"/> and, when <paramref name="maxNorm"/> is positive,
    /// the clipping coefficient for it; the gradients are not changed.
    /// </summary>
    public static GradientClip Measure(IEnumerable<Parameter> parameters, double maxNorm)
    {
        double norm = Math.Sqrt(SumOfSquares(parameters));
        if (!(maxNorm > 0) || !double.IsFinite(norm)) return new GradientClip(norm, 1f);
        float coefficient = (float)maxNorm / ((float)norm + 1e-6f);
        return new GradientClip(norm, Math.Min(coefficient, 1f));
    }

    private static double SumOfSquares(IEnumerable<Parameter> parameters)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var buffers = new List<(nint Start, long Length)>();
        var others = new List<Tensor>();
        foreach (var parameter in parameters)
        {
            var grad = parameter.grad;
            if (grad is null) continue;
            if (ElementChunks.Supports(grad)) buffers.Add((ElementChunks.Address(grad), grad.NumberOfElements));
            else others.Add(grad.to(ScalarType.Float32).norm());
        }
        // One read back for all of them: on a GPU each would wait for the device.
        double total = others.Count == 0 ? 0 : torch.stack(others).to(ScalarType.Float64).square().sum().item<double>();
        var chunks = ElementChunks.Of(buffers.Select(b => b.Length));
        var sums = new double[chunks.Count];
        ElementChunks.Run(chunks, torch.get_num_threads(), (chunk, c) => sums[c] = SumOfSquares((float*)buffers[chunk.Tensor].Start + chunk.Start, chunk.Length));
        foreach (double sum in sums) total += sum;
        return total;
    }

    private static double SumOfSquares(float* x, int length)
    {
        int i = 0;
        var a0 = Vector256<double>.Zero;
        var a1 = Vector256<double>.Zero;
        var a2 = Vector256<double>.Zero;
        var a3 = Vector256<double>.Zero;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= length - 2 * Vector256<float>.Count; i += 2 * Vector256<float>.Count)
            {
                var (l0, h0) = Vector256.Widen(Vector256.Load(x + i));
                var (l1, h1) = Vector256.Widen(Vector256.Load(x + i + Vector256<float>.Count));
                a0 = MultiplyAdd(l0, l0, a0);
                a1 = MultiplyAdd(h0, h0, a1);
                a2 = MultiplyAdd(l1, l1, a2);
                a3 = MultiplyAdd(h1, h1, a3);
            }
        }
        double sum = Vector256.Sum(a0 + a1 + (a2 + a3));
        for (; i < length; i++) sum += (double)x[i] * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> MultiplyAdd(Vector256<double> a, Vector256<double> b, Vector256<double> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : Vector256.FusedMultiplyAdd(a, b, c);
}
