namespace SdPipeline.Reporting;

/// <summary>The moving average the report draws over noisy per-step series.</summary>
public static class Smoothing
{
    /// <summary>
    /// Bias-corrected exponential moving average (as TensorBoard draws it): the first points are not
    /// pulled towards zero. <paramref name="beta"/> is the weight of the past, in [0, 1).
    /// </summary>
    public static double[] Ema(IReadOnlyList<double> values, double beta)
    {
        if (beta is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be in [0, 1)");
        var smoothed = new double[values.Count];
        double average = 0, weight = 0;
        for (int i = 0; i < values.Count; i++)
        {
            average = beta * average + (1 - beta) * values[i];
            weight = beta * weight + (1 - beta);
            smoothed[i] = average / weight;
        }
        return smoothed;
    }

    /// <summary>
    /// The EMA weight for a run of <paramref name="count"/> points: it averages over about a twentieth of
    /// the run (between 1 and 200 points), so a short run is barely smoothed and a long one reads clearly.
    /// </summary>
    public static double BetaFor(int count)
    {
        double window = Math.Clamp(count / 20.0, 1, 200);
        return 1 - 1 / window;
    }
}
