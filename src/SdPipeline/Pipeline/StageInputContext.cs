using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>What a stage's <see cref="StageDefinition.ExternalInputs"/> may look at: the config, a file-hash cache and the store.</summary>
/// <param name="Config">The effective config.</param>
/// <param name="Hashes">Content hashes of local files, remembered by size and modification time.</param>
/// <param name="Store">The artifact store being planned (results kept beside the stages, such as the benchmark's), or null.</param>
/// <param name="Cancellation">Ctrl+C: ends any wait on a server (the model stage may ask the Hub for its files' hashes).</param>
public sealed record StageInputContext(EffectiveConfig Config, FileHashCache Hashes, ArtifactStore? Store = null, CancellationToken Cancellation = default);
