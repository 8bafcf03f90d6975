using SdPipeline.Models.Unet;

namespace SdPipeline.Training;

/// <summary>
/// Which convolution path trains a UNet faster on the CPU, decided by the UNet's width rather than by timing at run
/// time, which would make the float32 rounding (and so bit-exact resume) depend on the machine's load.
/// </summary>
/// <remarks>
/// Measured with <c>sdpipe bench train-step</c> (docs/performance.md), one process at a time: a full-size UNet (SD 1.5,
/// 320–1280 channels) trains faster on libtorch's own convolutions (im2col and GEMM) than on oneDNN's — Intel Xeon
/// family 6 model 207: 3.28 against 3.76 s a step at 256 px and 9.25 against 9.66 s at 512 px; AMD EPYC Zen 4: 4.90
/// against 8.32 s at 256 px, equal at 512 px — while a narrow UNet trains faster on oneDNN (tiny-sd, 32–64 channels,
/// batch 8: 0.204 against 0.256 s on the Xeon; the tiny profile's 64–128 channels, batch 16: 0.51 against 0.98 s on
/// Zen 4). Widths between 128 and 320 were not measured and keep oneDNN. Only float32 training: under bf16 or fp16
/// autocast libtorch's own convolutions have no fast half-precision kernels (SD 1.5 at 256 px in bf16 on the Xeon: 2.38 s
/// a step with oneDNN, which uses the CPU's AMX, and over ten minutes without).
/// </remarks>
public static class TrainingConvolutions
{
    /// <summary>The narrowest block width from which training runs on libtorch's own convolutions.</summary>
    public const int NativeFromChannels = 320;

    /// <summary>
    /// Why training <paramref name="config"/>'s UNet should leave oneDNN off under <c>runtime.onednn=auto</c>, or null
    /// when oneDNN is the faster path (for <see cref="Numerics.NumericsGuard.Ensure"/>).
    /// </summary>
    /// <param name="config">The UNet being trained.</param>
    /// <param name="autocast">Whether the step computes under bf16 or fp16 autocast (oneDNN then stays).</param>
    public static string? OneDnnOffReason(UNet2DConditionConfig config, bool autocast)
    {
        ArgumentNullException.ThrowIfNull(config);
        int narrowest = config.BlockOutChannels.Min();
        return !autocast && narrowest >= NativeFromChannels
            ? $"libtorch's own convolutions train a UNet of {narrowest}+ channels faster in float32 on the CPU; runtime.onednn=on keeps oneDNN"
            : null;
    }
}
