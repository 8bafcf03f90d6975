namespace SdPipeline.Training.Optimization;

/// <summary>
/// Learning-rate schedules as multipliers of the base rate at an optimizer step, with the formulas of diffusers'
/// <c>optimization.py</c> as its <c>get_scheduler</c> calls them, so a run here follows the same curve as
/// <c>train_text_to_image.py --lr_scheduler NAME</c>: <c>get_scheduler</c> passes <c>num_cycles</c> only to
/// <c>cosine_with_restarts</c> (so <c>cosine</c> is always one half-wave down to zero) and no <c>lr_end</c> to
/// <c>polynomial</c> (so it always ends at the absolute rate <see cref="PolynomialLrEnd"/>).
/// </summary>
public static class LrSchedules
{
    /// <summary>The schedule names accepted by <c>train.lr_scheduler</c>.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"];

    /// <summary>The multiplier of the base learning rate at <paramref name="step"/> (0-based optimizer steps).</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="step">The optimizer step about to be taken.</param>
    /// <param name="warmupSteps">Linear warm-up length (ignored by <c>constant</c>).</param>
    /// <param name="totalSteps">Total optimizer steps.</param>
    /// <param name="restarts"><c>cosine_with_restarts</c>: the number of hard restarts (diffusers' <c>num_cycles</c>).</param>
    /// <param name="power"><c>polynomial</c>: the decay power.</param>
    /// <param name="endRatio"><c>polynomial</c>: the final rate over the base rate, <see cref="PolynomialEndRatio"/>.</param>
    public static double Multiplier(string name, long step, long warmupSteps, long totalSteps, double restarts = 1, double power = 1.0, double endRatio = 0) => name switch
    {
        "constant" => 1.0,
        "constant_with_warmup" => step < warmupSteps ? Warmup(step, warmupSteps) : 1.0,
        "linear" => step < warmupSteps ? Warmup(step, warmupSteps)
            : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmupSteps)),
        "cosine" => step < warmupSteps ? Warmup(step, warmupSteps)
            : Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * Progress(step, warmupSteps, totalSteps)))),
        "cosine_with_restarts" => step < warmupSteps ? Warmup(step, warmupSteps) : Restarts(Progress(step, warmupSteps, totalSteps), restarts),
        "polynomial" => Polynomial(step, warmupSteps, totalSteps, power, endRatio),
        _ => throw new ArgumentException($"train.lr_scheduler '{name}' is not one of {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>
    /// The rate <c>polynomial</c> ends at: <c>get_polynomial_decay_schedule_with_warmup</c>'s default <c>lr_end</c>, an
    /// absolute rate that <c>get_scheduler</c> never overrides.
    /// </summary>
    public const double PolynomialLrEnd = 1e-7;

    /// <summary>
    /// <c>polynomial</c>'s end ratio for a run whose base rate (after <c>scale_lr</c>) is
    /// <paramref name="baseLr"/>; diffusers refuses a base rate at or below <see cref="PolynomialLrEnd"/>.
    /// </summary>
    public static double PolynomialEndRatio(double baseLr) => PolynomialLrEnd / baseLr;

    private static double Warmup(long step, long warmupSteps) => (double)step / Math.Max(1, warmupSteps);

    private static double Progress(long step, long warmupSteps, long totalSteps) =>
        (double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps);

    private static double Restarts(double progress, double cycles) =>
        progress >= 1.0 ? 0.0 : Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * (cycles * progress % 1.0))));

    private static double Polynomial(long step, long warmupSteps, long totalSteps, double power, double endRatio)
    {
        if (step < warmupSteps) return Warmup(step, warmupSteps);
        if (step > totalSteps) return endRatio;
        double remaining = 1.0 - (double)(step - warmupSteps) / Math.Max(1, totalSteps - warmupSteps);
        return (1.0 - endRatio) * Math.Pow(remaining, power) + endRatio;
    }
}
