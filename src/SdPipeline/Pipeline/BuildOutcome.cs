namespace SdPipeline.Pipeline;

/// <summary>The result of <see cref="ArtifactStore.Build"/>.</summary>
/// <param name="Directory">The artifact folder.</param>
/// <param name="Manifest">Its manifest.</param>
/// <param name="CacheHit">True when nothing was built.</param>
public sealed record BuildOutcome(string Directory, Manifest Manifest, bool CacheHit);
