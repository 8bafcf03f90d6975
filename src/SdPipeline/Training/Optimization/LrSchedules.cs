namespace SdPipeline.Training.Optimization;

/// <summary>
/// Learning-rate schedules as multipliers of the base rate at an optimizer step, with the formulas of
/// transformers' <c>optimization.py</c> that diffusers' <c>get_scheduler</c> uses, so a run here follows
/// the same curve as <c>train_text_to_image.py --lr_scheduler NAME</c>.
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
    /// <param name="cycles">Cosine: half-waves (0.5 = one decay to 0); restarts: number of restarts.</param>
    /// <param name="power">Polynomial decay power.</param>
    /// <param name="endRatio">Polynomial: final rate ÷ base rate (transformers' lr_end / lr_init).</param>
    public static double Multiplier(string name, long step, long warmupSteps, long totalSteps, double cycles = 0.5, double power = 1.0, double endRatio = 1e-3) => name switch
    {
        "constant" => 1.0,
        "constant_with_warmup" => step < warmupSteps ? Warmup(step, warmupSteps) : 1.0,
        "linear" => step < warmupSteps ? Warmup(step, warmupSteps)
            : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmupSteps)),
        "cosine" => step < warmupSteps ? Warmup(step, warmupSteps)
            : Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * cycles * 2.0 * Progress(step, warmupSteps, totalSteps)))),
        "cosine_with_restarts" => step < warmupSteps ? Warmup(step, warmupSteps) : Restarts(Progress(step, warmupSteps, totalSteps), cycles),
        "polynomial" => Polynomial(step, warmupSteps, totalSteps, power, endRatio),
        _ => throw new ArgumentException($"train.lr_scheduler '{name}' is not one of {string.Join(", ", Names)}", nameof(name)),
    };

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
