namespace SdPipeline.Pipeline;

/// <summary>
/// Bounds for <c>sdpipe gc</c> on a machine that keeps its store between runs (a self-hosted runner):
/// instead of removing everything the current config does not reference, remove only what is older than
/// <see cref="OlderThan"/>, then the least recently used until the store fits in <see cref="MaxBytes"/>.
/// </summary>
/// <param name="MaxBytes">Size the whole store must fit in after collection; null for no size limit.</param>
/// <param name="OlderThan">Remove what was last used longer ago than this; null for no age limit.</param>
public sealed record GcLimits(long? MaxBytes = null, TimeSpan? OlderThan = null)
{
    /// <summary>True when neither limit is set (plain <c>gc</c>: remove everything unreferenced).</summary>
    public bool IsEmpty => MaxBytes is null && OlderThan is null;
}
