using SdPipeline.Config;
using SdPipeline.Progress;

namespace SdPipeline.Pipeline;

/// <summary>What a running stage is given.</summary>
/// <param name="Stage">The stage being built.</param>
/// <param name="Fingerprint">Its fingerprint.</param>
/// <param name="Directory">The folder to write into; renamed into place when the stage returns.</param>
/// <param name="Resuming">True when <paramref name="Directory"/> holds work from an interrupted run of the same fingerprint.</param>
/// <param name="Upstream">Artifact folders of the upstream stages, by stage name.</param>
/// <param name="Config">The effective config.</param>
/// <param name="Store">The artifact store (for caches shared between artifacts, such as downloads).</param>
/// <param name="Log">Where to write a line for the user.</param>
/// <param name="Progress">Progress bars (or plain lines when the output is not a terminal).</param>
/// <param name="Cancellation">Signalled on Ctrl+C or SIGTERM.</param>
public sealed record StageWorkspace(
    StageDefinition Stage,
    string Fingerprint,
    string Directory,
    bool Resuming,
    IReadOnlyDictionary<string, string> Upstream,
    EffectiveConfig Config,
    ArtifactStore Store,
    Action<string> Log,
    IProgressSink Progress,
    CancellationToken Cancellation)
{
    /// <summary>
    /// The earlier artifact the plan chose to continue (see <see cref="StageDefinition.Continuation"/>), or null to start
    /// over. A stage that resumes its own interrupted work prefers that.
    /// </summary>
    public StageContinuation? ContinueFrom { get; init; }
}
