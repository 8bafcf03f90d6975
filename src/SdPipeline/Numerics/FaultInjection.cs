using static TorchSharp.torch;

namespace SdPipeline.Numerics;

/// <summary>
/// A wrong kernel you can switch on, to prove that the self-check catches one and that the workaround engages: it
/// reproduces the oneDNN bug seen on AMD EPYC (Zen 5) — a wrong input gradient for convolutions with fewer than 16
/// output channels, only while oneDNN is on. Off unless a test sets <see cref="Active"/> or the process starts with
/// <c>SDPIPE_INJECT_FAULT=onednn-conv-input-grad</c> (for end-to-end tests of the CLI); never set in normal use.
/// </summary>
public static class FaultInjection
{
    /// <summary>The value of <c>SDPIPE_INJECT_FAULT</c> that switches the fault on.</summary>
    public const string ConvolutionInputGradient = "onednn-conv-input-grad";

    /// <summary>Whether the fault is on (initially from the environment).</summary>
    public static bool Active { get; set; } =
        Environment.GetEnvironmentVariable("SDPIPE_INJECT_FAULT") == ConvolutionInputGradient;

    /// <summary>
    /// The convolution's input, unchanged in value; with the fault on, oneDNN on and fewer than 16 output channels, its
    /// gradient comes back scaled by random factors in [0.5, 1.5), as the broken kernel's did.
    /// </summary>
    internal static Tensor ConvolutionInput(Tensor input, long outChannels)
    {
        if (!Active || outChannels >= 16 || !Models.Shared.OneDnn.Enabled) return input;
        var factors = rand_like(input, requires_grad: false).add_(0.5);
        // Forward: input·f + input·(1−f) = input. Backward: only the first term carries a gradient, so dx·f.
        return input * factors + (input * (1 - factors)).detach();
    }
}
