using System.Runtime.Intrinsics;
using SdPipeline.Training.Optimization;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// The EMA's update <c>s − (1 − decay)·(s − p)</c> for float32 CPU tensors in one pass over memory: the average read
/// and written once, the parameter read once, where the op-by-op form (<c>sub</c>, <c>mul</c>, <c>sub_</c>) streams
/// eight tensors' worth and allocates two temporaries per parameter. At SD 1.5's size that form took 0.55–0.69 s an
/// optimizer step on the Zen 4 of docs/performance.md.
/// </summary>
/// <remarks>
/// Each element takes the op-by-op form's three float32 operations, each rounded (no fused multiply-add), with
/// <c>1 − decay</c> rounded to float32 as ATen rounds a scalar for a float32 tensor: the same bits.
/// </remarks>
internal static unsafe class EmaKernel
{
    /// <summary>One average and its parameter (float32, contiguous, on the CPU, the same length).</summary>
    public readonly record struct Buffers(nint Shadow, nint Parameter, long Length);

    /// <summary>Whether the one-pass update can run on these tensors.</summary>
    public static bool Supports(Tensor shadow, Tensor parameter) =>
        ElementChunks.Supports(shadow) && ElementChunks.Supports(parameter) && shadow.NumberOfElements == parameter.NumberOfElements;

    /// <summary>The buffers of tensors for which <see cref="Supports"/> holds.</summary>
    public static Buffers Of(Tensor shadow, Tensor parameter) =>
        new(ElementChunks.Address(shadow), ElementChunks.Address(parameter), shadow.NumberOfElements);

    /// <summary>Moves every average in <paramref name="buffers"/> toward its parameter, in parallel over <paramref name="threads"/> threads.</summary>
    public static void Step(IReadOnlyList<Buffers> buffers, float oneMinusDecay, int threads) =>
        ElementChunks.Run(ElementChunks.Of(buffers.Select(b => b.Length)), threads, (chunk, _) =>
        {
            var b = buffers[chunk.Tensor];
            Update((float*)b.Shadow + chunk.Start, (float*)b.Parameter + chunk.Start, chunk.Length, oneMinusDecay);
        });

    private static void Update(float* s, float* p, int length, float oneMinusDecay)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var weight = Vector256.Create(oneMinusDecay);
            for (; i <= length - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var shadow = Vector256.Load(s + i);
                (shadow - (shadow - Vector256.Load(p + i)) * weight).Store(s + i);
            }
        }
        for (; i < length; i++) s[i] -= (s[i] - p[i]) * oneMinusDecay;
    }
}
