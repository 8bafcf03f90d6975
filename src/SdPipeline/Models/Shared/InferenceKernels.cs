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
/// <remarks>
/// The rules differ by vendor (<see cref="AmdRules"/>), each measured on one CPU. <c>amd</c> and <c>intel</c> apply one
/// vendor's rules on any CPU, so that a CPU of the other vendor can time both sets (<c>sdpipe bench train-step --kernels
/// amd</c> beside <c>auto</c> on an Intel Xeon) before its rule is changed; a kernel's own instruction-set requirement
/// still holds under either.
/// </remarks>
public static class InferenceKernels
{
    /// <summary>The values of <c>runtime.kernels</c>.</summary>
    public static IReadOnlyList<string> Settings { get; } = ["auto", "off", "amd", "intel"];

    /// <summary>Whether the models may choose their own kernels (true unless turned off).</summary>
    public static bool Enabled { get; private set; } = true;

    /// <summary>
    /// Whether the rules measured on AMD's CPUs choose (this CPU's vendor, <see cref="Convolutions.OnAmd"/>, unless
    /// <c>amd</c> or <c>intel</c> says): training's attention and 3×3 convolution kernels, libtorch's GEMM calls by
    /// oneDNN's brgemm, the linear kernel, channels-last Winograd at 16×16 and libtorch's own path only at 4×4.
    /// </summary>
    public static bool AmdRules { get; private set; } = Convolutions.OnAmd;

    /// <summary>
    /// Applies a <c>runtime.kernels</c> value: <c>auto</c> lets this CPU's vendor's rules choose (and puts
    /// <see cref="LibtorchGemm"/>'s route in place where it is preferred), <c>amd</c> and <c>intel</c> that vendor's rules,
    /// <c>off</c> keeps libtorch's paths.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="setting"/> is not one of <see cref="Settings"/>.</exception>
    public static void Use(string setting)
    {
        (Enabled, AmdRules) = setting switch
        {
            "auto" => (true, Convolutions.OnAmd),
            "off" => (false, Convolutions.OnAmd),
            "amd" => (true, true),
            "intel" => (true, false),
            _ => throw new ArgumentException($"runtime.kernels '{setting}' is not one of {string.Join(", ", Settings)}", nameof(setting)),
        };
        if (Enabled && LibtorchGemm.Preferred) LibtorchGemm.Install();
    }

    /// <summary>Which rules choose, for <c>sdpipe bench</c>'s header: a figure taken under the other vendor's rules says so.</summary>
    public static string Describe() =>
        !Enabled ? "off (every layer as libtorch runs it)"
        : AmdRules == Convolutions.OnAmd ? $"{(AmdRules ? "AMD's" : "Intel's")} rules, this CPU's"
        : AmdRules ? "AMD's rules, on a CPU that is not AMD's" : "Intel's rules, on an AMD CPU";
}
