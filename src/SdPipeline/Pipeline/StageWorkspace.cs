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
    /// <summary>The artifact folder of <paramref name="upstream"/>, one of the stages this one declares upstream.</summary>
    /// <exception cref="InvalidOperationException">This stage does not declare <paramref name="upstream"/> upstream.</exception>
    public string FolderOf(StageDefinition upstream) => Upstream.TryGetValue(upstream.Name, out var folder)
        ? folder
        : throw new InvalidOperationException($"stage '{Stage.Name}' does not declare '{upstream.Name}' upstream");

    /// <summary>
    /// The result record <paramref name="upstream"/> returned, read back from its manifest's summary as the type it was
    /// written from (<see cref="Manifest.SummaryOf{T}"/>), or null when its folder holds no readable manifest.
    /// </summary>
    /// <exception cref="Newtonsoft.Json.JsonException">The summary is not a <typeparamref name="T"/>.</exception>
    public T? ResultOf<T>(StageDefinition upstream) where T : class =>
        Manifest.TryRead(Path.Combine(FolderOf(upstream), Manifest.FileName))?.SummaryAs<T>();

    /// <summary>
    /// The earlier artifact the plan chose to continue (see <see cref="StageDefinition.Continuation"/>), or null to start
    /// over. A stage that resumes its own interrupted work prefers that.
    /// </summary>
    public StageContinuation? ContinueFrom { get; init; }
}
