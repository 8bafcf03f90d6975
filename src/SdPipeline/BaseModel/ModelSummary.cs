namespace SdPipeline.BaseModel;

/// <summary>
/// The model stage's result, as its manifest's <c>summary</c> holds it (snake_case keys). Downstream stages read the
/// full record, <see cref="ResolvedModel"/>, from the artifact's <c>model.json</c>; this is what the manifest shows.
/// </summary>
public sealed record ModelSummary
{
    /// <summary><c>builtin</c>, <c>hub</c> or <c>local</c>.</summary>
    public required string Kind { get; init; }

    /// <summary>The diffusers folder, as <see cref="ResolvedModel.Folder"/>.</summary>
    public required string Folder { get; init; }

    /// <summary>The Hub commit, for Hub models.</summary>
    public string? Commit { get; init; }

    /// <summary>How many files the pipeline reads from the folder.</summary>
    public int Files { get; init; }
}
