namespace SdPipeline.Reporting;

/// <summary>One pipeline stage as this run found or built it.</summary>
/// <param name="Name">Stage name (<c>download</c>, <c>train</c>, …).</param>
/// <param name="Fingerprint">The artifact's fingerprint (the full SHA-256 or its short form).</param>
/// <param name="CacheHit">True when the artifact was already in the store and nothing was rebuilt.</param>
/// <param name="DurationSeconds">Wall time of the build that made the artifact (its manifest's <c>duration_seconds</c>; for a cache hit, the earlier build's).</param>
public sealed record StageRun(string Name, string Fingerprint, bool CacheHit, double DurationSeconds);
