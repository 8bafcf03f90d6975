namespace SdPipeline.Benchmarks.Sweep;

/// <summary>A sweep's results as a plain table, which the report shows as it is (the sweep chooses columns and units).</summary>
/// <param name="Columns">Column headers, with units (<c>step time (s)</c>).</param>
/// <param name="Rows">Rows of cell text, each as long as <paramref name="Columns"/>.</param>
/// <param name="Notes">Lines printed under the table (machine, what was measured, caveats).</param>
public sealed record SweepTable(IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string>> Rows, IReadOnlyList<string> Notes)
{
    /// <summary>Throws when a row's length differs from the number of columns.</summary>
    public void Validate()
    {
        for (int i = 0; i < Rows.Count; i++)
            if (Rows[i].Count != Columns.Count)
                throw new ArgumentException($"benchmark row {i + 1} has {Rows[i].Count} cells but the table has {Columns.Count} columns ({string.Join(", ", Columns)})");
    }
}
