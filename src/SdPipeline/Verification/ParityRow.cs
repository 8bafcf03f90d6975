namespace SdPipeline.Verification;

/// <summary>One line of the verification table.</summary>
/// <param name="Check">What was checked, <c>FIXTURE.QUANTITY</c> (for example <c>unet.out</c>, <c>train_step_epsilon.step1.grad</c>).</param>
/// <param name="MaxAbsError">max |ours − reference| of the row's worst comparison; null when nothing was compared.</param>
/// <param name="MaxRelError">
/// The same error relative to the reference: divided by its abs max, or per element when the tolerance is per
/// element (see <see cref="TensorComparison.MaxRelError"/>); null when nothing was compared.
/// </param>
/// <param name="Tolerance">The bound of the worst comparison, as text.</param>
/// <param name="Passed">Whether every comparison of the row is within its bound.</param>
/// <param name="Note">Which comparison was the worst, what failed and where, or why the fixture could not be interpreted.</param>
public sealed record ParityRow(string Check, double? MaxAbsError, double? MaxRelError, string Tolerance, bool Passed, string Note)
{
    /// <summary>
    /// A row over one or more comparisons: it passes when all do, and shows the one closest to (or furthest past)
    /// its bound.
    /// </summary>
    public static ParityRow From(string check, IReadOnlyList<TensorComparison> comparisons, string? note = null)
    {
        if (comparisons.Count == 0) return CannotInterpret(check, "nothing to compare");
        var worst = comparisons.MaxBy(c => c.Usage)!;
        var failed = comparisons.Where(c => !c.Passed).ToList();
        var parts = new List<string>();
        if (!string.IsNullOrEmpty(note)) parts.Add(note);
        if (comparisons.Count > 1)
            parts.Add(worst.MaxAbsError == 0 ? $"all {comparisons.Count} identical" : $"worst of {comparisons.Count}: {worst.Name}");
        if (failed.Count > 0)
            parts.Add("failed: " + string.Join("; ", failed.Select(c => c.Detail is null ? c.Name : $"{c.Name} ({c.Detail})")));
        // A relative error against an all-zero reference (a gradient that is rounding noise) has no meaning: no value.
        double? relative = worst.MaxAbsError != 0 && double.IsPositiveInfinity(worst.MaxRelError) ? null : worst.MaxRelError;
        return new ParityRow(check, worst.MaxAbsError, relative, worst.Tolerance.ToString(), failed.Count == 0, string.Join(" — ", parts));
    }

    /// <summary>A failed row for a fixture (or a part of it) that could not be read or matched to a check.</summary>
    public static ParityRow CannotInterpret(string check, string reason) => new(check, null, null, "", false, $"cannot interpret: {reason}");

    /// <summary>A failed row for a check that could not run (a missing model component, an error while running).</summary>
    public static ParityRow Error(string check, string reason) => new(check, null, null, "", false, reason);
}
