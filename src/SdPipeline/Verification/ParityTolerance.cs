using System.Globalization;

namespace SdPipeline.Verification;

/// <summary>
/// What counts as a match for one compared quantity. The values come from the "Suggested test tolerances" of the
/// fixtures README (about 10–50× the float32 spread measured between PyTorch runs).
/// </summary>
/// <param name="Kind">How the bound is applied.</param>
/// <param name="Value">The bound (atol, or rtol).</param>
/// <param name="OutlierFraction">With <see cref="ToleranceKind.Absolute"/>: the share of elements (0 … 1) allowed to exceed <paramref name="Value"/>…</param>
/// <param name="OutlierLimit">…as long as none exceeds this absolute bound.</param>
public sealed record ParityTolerance(ToleranceKind Kind, double Value, double OutlierFraction = 0, double OutlierLimit = 0)
{
    /// <summary>Bit-for-bit equality (integers: token ids, integer timesteps, RNG draws).</summary>
    public static ParityTolerance Exact { get; } = new(ToleranceKind.Absolute, 0);

    /// <summary>Text encoder / UNet / VAE outputs: atol 1e-4, or rtol 1e-4 of the tensor's abs max.</summary>
    public static ParityTolerance ModelOutput { get; } = new(ToleranceKind.AbsoluteOrRelativeToMax, 1e-4);

    /// <summary>Scheduler tables (betas, ᾱ, sigmas, SNR): rtol 1e-6 per element.</summary>
    public static ParityTolerance SchedulerTable { get; } = new(ToleranceKind.RelativePerElement, 1e-6);

    /// <summary>Scheduler loops and single steps, add_noise, get_velocity: atol 1e-5.</summary>
    public static ParityTolerance SchedulerLoop { get; } = new(ToleranceKind.Absolute, 1e-5);

    /// <summary>Euler's fractional timesteps: atol 1e-4.</summary>
    public static ParityTolerance FloatTimesteps { get; } = new(ToleranceKind.Absolute, 1e-4);

    /// <summary>Pipeline latents after each step and at the end: atol 1e-3.</summary>
    public static ParityTolerance PipelineLatents { get; } = new(ToleranceKind.Absolute, 1e-3);

    /// <summary>Pipeline decoded image (raw VAE output and its [0, 1] version): atol 1e-4.</summary>
    public static ParityTolerance PipelineImage { get; } = new(ToleranceKind.Absolute, 1e-4);

    /// <summary>8-bit images: ±1 grey level.</summary>
    public static ParityTolerance Uint8Image { get; } = new(ToleranceKind.Absolute, 1);

    /// <summary>Training loss: rtol 1e-5.</summary>
    public static ParityTolerance Loss { get; } = new(ToleranceKind.RelativePerElement, 1e-5);

    /// <summary>Gradients: atol 1e-4 × the abs max of that gradient.</summary>
    public static ParityTolerance Gradient { get; } = new(ToleranceKind.RelativeToMax, 1e-4);

    /// <summary>
    /// The global gradient norm: rtol 1e-5. The README gives none; the gradients' own bound (1e-4 of each abs max)
    /// would allow up to 1e-4, and the project's gradient test has held 1e-5.
    /// </summary>
    public static ParityTolerance GradientNorm { get; } = new(ToleranceKind.RelativePerElement, 1e-5);

    /// <summary>
    /// Parameters after an AdamW step: atol 1e-6, except that up to 0.1 % of the elements may differ by up to 2·lr
    /// (an element whose gradient is float noise may take the step with the other sign).
    /// </summary>
    public static ParityTolerance ParameterAfterStep(double learningRate) => new(ToleranceKind.Absolute, 1e-6, 1e-3, 2 * learningRate);

    /// <summary>An absolute bound.</summary>
    public static ParityTolerance Absolute(double atol) => new(ToleranceKind.Absolute, atol);

    /// <summary>A per-element relative bound.</summary>
    public static ParityTolerance RelativePerElement(double rtol) => new(ToleranceKind.RelativePerElement, rtol);

    /// <summary>Short text for a table column, for example <c>atol 1e-4</c>, <c>rtol 1e-6/elem</c>, <c>exact</c>.</summary>
    public override string ToString() => Kind switch
    {
        ToleranceKind.Absolute when Value == 0 && OutlierFraction == 0 => "exact",
        ToleranceKind.Absolute when OutlierFraction > 0 => $"atol {Format(Value)} ({Format(OutlierFraction * 100)}% ≤ {Format(OutlierLimit)})",
        ToleranceKind.Absolute => $"atol {Format(Value)}",
        ToleranceKind.AbsoluteOrRelativeToMax => $"atol|rtol·max {Format(Value)}",
        ToleranceKind.RelativeToMax => $"rtol·max {Format(Value)}",
        ToleranceKind.RelativePerElement => $"rtol {Format(Value)}/elem",
        _ => Kind.ToString(),
    };

    private static string Format(double value) => value.ToString(value is >= 0.01 and < 1000 ? "0.###" : "0.#e0", CultureInfo.InvariantCulture);
}
