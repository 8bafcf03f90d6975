namespace SdPipeline.Pipeline;

/// <summary>Whether an artifact folder is a valid cache hit, and if not, why.</summary>
/// <param name="Manifest">The manifest when valid.</param>
/// <param name="Problem">Why the folder is not a hit; null when valid.</param>
/// <param name="Exists">Whether the folder exists at all.</param>
public sealed record ArtifactStatus(Manifest? Manifest, string? Problem, bool Exists)
{
    /// <summary>True when the folder holds a complete artifact.</summary>
    public bool IsValid => Manifest is not null && Problem is null;
}
