using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>What a stage's <see cref="StageDefinition.ExternalInputs"/> may look at: the config and a file-hash cache.</summary>
/// <param name="Config">The effective config.</param>
/// <param name="Hashes">Content hashes of local files, remembered by size and modification time.</param>
public sealed record StageInputContext(EffectiveConfig Config, FileHashCache Hashes);
