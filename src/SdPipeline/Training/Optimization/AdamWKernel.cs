using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training.Optimization;

/// <summary>
/// AdamW's update for float32 CPU tensors in one pass over memory: each element of the parameter, its gradient and
/// its two moments is read once and written once, where the op-by-op form (<c>mul_</c>, <c>lerp_</c>, <c>mul_</c>,
/// <c>addcmul_</c>, <c>sqrt</c>, <c>div</c>, <c>add_</c>, <c>addcdiv_</c>) streams the tensors about twenty times
/// and allocates two temporaries per parameter. At batch 1 the step over SD 1.5's 860 M parameters is pure memory
/// traffic, so that is most of its cost. All parameters are cut into chunks spread over the threads.
/// </summary>
/// <remarks>
/// The gradient is first multiplied by the step's scale (a clipping coefficient, 1 otherwise: <c>clip_grad_norm_</c>'s
/// in-place multiply, done as the gradient is read). Each element then follows PyTorch's <c>_single_tensor_adamw</c>
/// operation by operation, in float32 with the scalars rounded to float32 as ATen's CPU kernels round them: <c>p·(1−lr·wd)</c>; <c>m + (1−β1)·(g−m)</c> (lerp, a fused
/// multiply-add as ATen's vectorised lerp); <c>v·β2 + ((1−β2)·g)·g</c>; <c>√v / √(1−β2ᵗ) + ε</c>;
/// <c>p + ((−lr/(1−β1ᵗ))·m) / denominator</c>. Results agree with the op-by-op form to float32 rounding (ATen's own
/// kernels may contract other products into FMAs, so bit equality with them is not promised).
/// </remarks>
internal static unsafe class AdamWKernel
{
    /// <summary>One parameter's buffers (float32, contiguous, on the CPU).</summary>
    public readonly record struct Buffers(nint Parameter, nint Gradient, nint ExpAvg, nint ExpAvgSq, long Length);

    /// <summary>
    /// The scalars of one step, each rounded to float32: the gradient's scale first (a clipping coefficient; 1 leaves the
    /// gradient as it is), then AdamW's.
    /// </summary>
    public readonly record struct Scalars(float GradientScale, float Decay, float Beta1Weight, float Beta2, float OneMinusBeta2, float BiasCorrection2Sqrt,
        float Epsilon, float NegativeStepSize);

    /// <summary>Whether the fused update can run on these tensors.</summary>
    public static bool Supports(Tensor parameter, Tensor gradient, Tensor expAvg, Tensor expAvgSq) =>
        ElementChunks.Supports(parameter) && ElementChunks.Supports(gradient) && ElementChunks.Supports(expAvg) && ElementChunks.Supports(expAvgSq)
        && gradient.NumberOfElements == parameter.NumberOfElements
        && expAvg.NumberOfElements == parameter.NumberOfElements
        && expAvgSq.NumberOfElements == parameter.NumberOfElements;

    /// <summary>The buffers of tensors for which <see cref="Supports"/> holds.</summary>
    public static Buffers Of(Tensor parameter, Tensor gradient, Tensor expAvg, Tensor expAvgSq) =>
        new(ElementChunks.Address(parameter), ElementChunks.Address(gradient), ElementChunks.Address(expAvg), ElementChunks.Address(expAvgSq),
            parameter.NumberOfElements);

    /// <summary>Updates every parameter in <paramref name="buffers"/>, in parallel over <paramref name="threads"/> threads.</summary>
    public static void Step(IReadOnlyList<Buffers> buffers, Scalars scalars, int threads)
    {
        ElementChunks.Run(ElementChunks.Of(buffers.Select(b => b.Length)), threads, (chunk, _) =>
        {
            var (index, start, length) = chunk;
            var b = buffers[index];
            Update((float*)b.Parameter + start, (float*)b.Gradient + start, (float*)b.ExpAvg + start, (float*)b.ExpAvgSq + start, length, scalars);
        });
    }

    private static void Update(float* p, float* g, float* m, float* v, int length, Scalars s)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var gradientScale = Vector256.Create(s.GradientScale);
            var decay = Vector256.Create(s.Decay);
            var weight = Vector256.Create(s.Beta1Weight);
            var beta2 = Vector256.Create(s.Beta2);
            var oneMinusBeta2 = Vector256.Create(s.OneMinusBeta2);
            var correction = Vector256.Create(s.BiasCorrection2Sqrt);
            var epsilon = Vector256.Create(s.Epsilon);
            var step = Vector256.Create(s.NegativeStepSize);
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var grad = Vector256.Load(g + i) * gradientScale;
                var param = Vector256.Load(p + i) * decay;
                var expAvg = Vector256.Load(m + i);
                expAvg = MultiplyAdd(weight, grad - expAvg, expAvg);
                var expAvgSq = Vector256.Load(v + i) * beta2 + oneMinusBeta2 * grad * grad;
                var denominator = Vector256.Sqrt(expAvgSq) / correction + epsilon;
                param += step * expAvg / denominator;
                param.Store(p + i);
                expAvg.Store(m + i);
                expAvgSq.Store(v + i);
            }
        }
        for (; i < length; i++)
        {
            float grad = g[i] * s.GradientScale;
            float param = p[i] * s.Decay;
            float expAvg = MathF.FusedMultiplyAdd(s.Beta1Weight, grad - m[i], m[i]);
            float expAvgSq = v[i] * s.Beta2 + s.OneMinusBeta2 * grad * grad;
            float denominator = MathF.Sqrt(expAvgSq) / s.BiasCorrection2Sqrt + s.Epsilon;
            p[i] = param + s.NegativeStepSize * expAvg / denominator;
            m[i] = expAvg;
            v[i] = expAvgSq;
        }
    }

    // ATen's vectorised lerp is fmadd(weight, end − start, start): fused where the CPU has FMA, as here.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : Vector256.FusedMultiplyAdd(a, b, c);
}
