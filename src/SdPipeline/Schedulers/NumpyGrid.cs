namespace SdPipeline.Schedulers;

/// <summary>
/// The few NumPy routines diffusers builds timestep and sigma grids with (<c>np.linspace</c>, <c>np.arange</c>,
/// <c>np.round</c>, <c>np.interp</c>), reproduced operation for operation in float64 so that every grid matches
/// bit for bit: a half-way value rounds differently if <c>linspace</c> is computed another way.
/// </summary>
internal static class NumpyGrid
{
    /// <summary><c>np.linspace(start, stop, num)</c>: <c>i * ((stop - start) / (num - 1)) + start</c>, the last value exactly <paramref name="stop"/>.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var values = new double[num];
        if (num == 1)
        {
            values[0] = start;
            return values;
        }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++)
            values[i] = i * step + start;
        values[num - 1] = stop;
        return values;
    }

    /// <summary>
    /// <c>np.arange(start, stop, step)</c> for floats: <c>ceil((stop - start) / step)</c> values, the i-th being
    /// <c>start + i * ((start + step) - start)</c> as NumPy's fill loop computes it.
    /// </summary>
    public static double[] Arange(double start, double stop, double step)
    {
        int length = Math.Max(0, (int)Math.Ceiling((stop - start) / step));
        var values = new double[length];
        if (length == 0)
            return values;
        values[0] = start;
        if (length == 1)
            return values;
        values[1] = start + step;
        double delta = values[1] - start;
        for (int i = 2; i < length; i++)
            values[i] = start + i * delta;
        return values;
    }

    /// <summary><c>np.round</c>: to the nearest integer, halves to even.</summary>
    public static double Round(double value) => Math.Round(value, MidpointRounding.ToEven);

    /// <summary>
    /// <c>np.interp(x, np.arange(len(fp)), fp)</c>: linear interpolation of a table sampled at 0, 1, 2, …
    /// (NumPy's formula <c>slope * (x - xⱼ) + fⱼ</c>, exact at the sample points, clamped at both ends).
    /// </summary>
    public static double Interp(double x, IReadOnlyList<double> fp)
    {
        int last = fp.Count - 1;
        if (double.IsNaN(x))
            return x;
        if (x <= 0)
            return fp[0];
        if (x >= last)
            return fp[last];
        int j = (int)Math.Floor(x);
        if (j == x)
            return fp[j];
        double slope = (fp[j + 1] - fp[j]) / ((j + 1.0) - j);
        double value = slope * (x - j) + fp[j];
        if (double.IsNaN(value))
        {
            value = slope * (x - (j + 1.0)) + fp[j + 1];
            if (double.IsNaN(value) && fp[j] == fp[j + 1])
                value = fp[j];
        }
        return value;
    }
}
