using System.Globalization;

namespace SdPipeline.Config;

/// <summary>
/// The values a numeric key accepts: an interval (each end open, closed or absent) and optionally a step.
/// Non-finite numbers (NaN, infinities) are never accepted, and an integer key never leaves its CLR type's
/// range, whatever the attribute says.
/// </summary>
/// <param name="Min">Lower end; negative infinity when there is none.</param>
/// <param name="MinExclusive">Whether <paramref name="Min"/> itself is excluded.</param>
/// <param name="Max">Upper end; positive infinity when there is none.</param>
/// <param name="MaxExclusive">Whether <paramref name="Max"/> itself is excluded.</param>
/// <param name="MultipleOf">A step the value must be a multiple of (pixel sizes the VAE divides by 8); 0 for none.</param>
public sealed record ConfigRange(double Min, bool MinExclusive, double Max, bool MaxExclusive, long MultipleOf)
{
    /// <summary>Any finite number.</summary>
    public static ConfigRange Any { get; } = new(double.NegativeInfinity, false, double.PositiveInfinity, false, 0);

    /// <summary>Whether the range says anything beyond "finite".</summary>
    public bool IsBounded => !double.IsNegativeInfinity(Min) || !double.IsPositiveInfinity(Max) || MultipleOf > 0;

    /// <summary>The range a key declares, narrowed to what its (element) type can hold.</summary>
    public static ConfigRange For(ConfigKeyAttribute doc, Type type)
    {
        var element = type.IsArray ? type.GetElementType()! : type;
        double min = doc.Min, max = doc.Max;
        if (element == typeof(int))
        {
            min = Math.Max(min, int.MinValue);
            max = Math.Min(max, int.MaxValue);
        }
        return new ConfigRange(min, doc.MinExclusive, max, doc.MaxExclusive, doc.MultipleOf);
    }

    /// <summary>Whether <paramref name="value"/> is accepted.</summary>
    public bool Contains(double value) =>
        double.IsFinite(value)
        && (MinExclusive ? value > Min : value >= Min)
        && (MaxExclusive ? value < Max : value <= Max)
        && (MultipleOf == 0 || Math.IEEERemainder(value, MultipleOf) == 0);

    /// <summary>The range as the docs and messages show it: <c>≥ 1</c>, <c>in [0, 1)</c>, <c>in [8, 8192], multiple of 8</c>.</summary>
    public string Describe(bool isInteger)
    {
        bool hasMin = !double.IsNegativeInfinity(Min) && !(isInteger && Min <= int.MinValue);
        bool hasMax = !double.IsPositiveInfinity(Max) && !(isInteger && Max >= int.MaxValue);
        string text = (hasMin, hasMax) switch
        {
            (true, true) => $"in {(MinExclusive ? "(" : "[")}{Show(Min)}, {Show(Max)}{(MaxExclusive ? ")" : "]")}",
            (true, false) => $"{(MinExclusive ? ">" : "≥")} {Show(Min)}",
            (false, true) => $"{(MaxExclusive ? "<" : "≤")} {Show(Max)}",
            _ => "",
        };
        if (MultipleOf > 0) text += (text.Length > 0 ? ", " : "") + $"multiple of {MultipleOf}";
        return text;
    }

    private static string Show(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
