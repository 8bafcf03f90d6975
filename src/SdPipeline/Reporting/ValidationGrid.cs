using SdPipeline.Training;

namespace SdPipeline.Reporting;

/// <summary>The validation images of the run (<c>train.validation_prompts</c>): a row per step sampled, a column per prompt.</summary>
/// <param name="Prompts">The prompts, in column order.</param>
/// <param name="Seed">The seed of every image.</param>
/// <param name="Rows">One row per validation pass, in step order.</param>
public sealed record ValidationGrid(IReadOnlyList<string> Prompts, long Seed, IReadOnlyList<ValidationGridRow> Rows)
{
    /// <summary>Rows a report shows at most; longer runs show this many, evenly spaced, the first and the last among them.</summary>
    public const int MaxRowsShown = 12;

    /// <summary>Reads the images of <paramref name="series"/>, with their flags.</summary>
    public static ValidationGrid From(ValidationSeries series)
    {
        ArgumentNullException.ThrowIfNull(series);
        return new ValidationGrid(series.Prompts, series.Seed, series.Steps.Select(step => new ValidationGridRow(step.Step,
            step.Files.Select(f => f is null ? null : SampleImage.FromFile(series.Seed, f)).ToList())).ToList());
    }

    /// <summary>The rows a report shows: all of them up to <see cref="MaxRowsShown"/>, else that many evenly spaced from first to last.</summary>
    public IReadOnlyList<ValidationGridRow> ShownRows()
    {
        if (Rows.Count <= MaxRowsShown) return Rows;
        return Enumerable.Range(0, MaxRowsShown)
            .Select(i => (int)Math.Round(i * (Rows.Count - 1) / (double)(MaxRowsShown - 1)))
            .Distinct()
            .Select(i => Rows[i])
            .ToList();
    }
}

/// <summary>One validation pass.</summary>
/// <param name="Step">The optimizer step (0: the base model).</param>
/// <param name="Images">The image of each prompt, in column order; null where it is missing.</param>
public sealed record ValidationGridRow(long Step, IReadOnlyList<SampleImage?> Images);
