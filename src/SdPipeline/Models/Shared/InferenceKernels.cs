namespace SdPipeline.Models.Shared;

/// <summary>
/// The process-wide switch for the project's own inference kernels: <see cref="WinogradConvolution"/>,
/// <see cref="PlainWinogradConvolution"/>, <see cref="GroupNormKernel"/>, <see cref="AttentionKernel"/>, <see cref="LinearKernel"/>, the VAE's
/// channels-last layout that feeds them, and libtorch's own path for wide convolutions at low resolutions
/// (<see cref="Convolutions"/>), and on AMD's CPUs libtorch's own float32 GEMM calls, in training too
/// (<see cref="LibtorchGemm"/>), and training's attention and 3×3 convolutions with their gradients
/// (<see cref="AttentionFunction"/>, <see cref="TrainingConvolutionFunction"/>). Their selection rules were measured on an Intel Xeon and an AMD EPYC Zen 4; where
/// <c>sdpipe bench kernels</c> finds them slower on another CPU, <c>runtime.kernels=off</c> runs every layer as libtorch
/// does. Results agree either way to float32 rounding.
/// </summary>
public static class InferenceKernels
{
    /// <summary>The values of <c>runtime.kernels</c>.</summary>
    public static IReadOnlyList<string> Settings { get; } = ["auto", "off"];

    /// <summary>Whether the models may choose their own kernels (true unless turned off).</summary>
    public static bool Enabled { get; private set; } = true;

    /// <summary>
    /// Applies a <c>runtime.kernels</c> value: <c>auto</c> lets the rules choose (and puts <see cref="LibtorchGemm"/>'s
    /// route in place where it is preferred), <c>off</c> keeps libtorch's paths.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="setting"/> is not one of <see cref="Settings"/>.</exception>
    public static void Use(string setting)
    {
        Enabled = setting switch
        {
            "auto" => true,
            "off" => false,
            _ => throw new ArgumentException($"runtime.kernels '{setting}' is not one of {string.Join(", ", Settings)}", nameof(setting)),
        };
        if (Enabled && LibtorchGemm.Preferred) LibtorchGemm.Install();
    }
}
