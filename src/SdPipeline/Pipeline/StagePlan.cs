namespace SdPipeline.Pipeline;

/// <summary>Whether a stage's artifact is usable as it stands.</summary>
public enum StageStatus
{
    /// <summary>A valid artifact exists for the current inputs.</summary>
    Cached,

    /// <summary>The stage must run.</summary>
    Stale,

    /// <summary>Its inputs cannot be resolved (a configuration error here or upstream).</summary>
    Error,
}

/// <summary>One stage in a plan: its fingerprint, status, and why.</summary>
/// <param name="Stage">The stage.</param>
/// <param name="Inputs">What the fingerprint is computed from; null when the inputs could not be resolved.</param>
/// <param name="Fingerprint">The fingerprint; null on error.</param>
/// <param name="Status">Cached, stale or error.</param>
/// <param name="Reasons">Why it is stale (or in error); empty when cached.</param>
/// <param name="ArtifactDirectory">Where its artifact is (or will be).</param>
public sealed record StagePlan(
    StageDefinition Stage,
    FingerprintInputs? Inputs,
    string? Fingerprint,
    StageStatus Status,
    IReadOnlyList<string> Reasons,
    string? ArtifactDirectory)
{
    /// <summary>The earlier artifact this stale stage continues instead of starting over (see <see cref="StageDefinition.Continuation"/>), or null.</summary>
    public StageContinuation? Continuation { get; init; }
}
