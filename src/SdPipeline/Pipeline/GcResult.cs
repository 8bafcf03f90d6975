namespace SdPipeline.Pipeline;

/// <summary>What a bounded collection did.</summary>
/// <param name="Removed">The folders removed (or, on a dry run, that would be).</param>
/// <param name="StoreBytesBefore">Size of the whole store before.</param>
/// <param name="StoreBytesAfter">Size of the whole store after (on a dry run: as it would be).</param>
/// <param name="Kept">Notes on what was kept although a limit asked for room (current config, in use, unresolved stage).</param>
public sealed record GcResult(IReadOnlyList<RemovedArtifact> Removed, long StoreBytesBefore, long StoreBytesAfter, IReadOnlyList<string> Kept);
