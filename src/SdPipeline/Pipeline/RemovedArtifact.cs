namespace SdPipeline.Pipeline;

/// <summary>A folder the garbage collector removed (or would remove).</summary>
/// <param name="Path">The folder.</param>
/// <param name="Bytes">Its size (files only; links are not followed).</param>
/// <param name="Reason">Why it went: unreferenced, a leftover, older than the age limit, or the store over its size limit.</param>
/// <param name="LastUsed">When it was last built or found cached (UTC); null when unknown.</param>
public sealed record RemovedArtifact(string Path, long Bytes, string Reason = "unreferenced", DateTime? LastUsed = null);
