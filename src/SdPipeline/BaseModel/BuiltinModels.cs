using SdPipeline.Pipeline;

namespace SdPipeline.BaseModel;

/// <summary>Models the tool makes itself, offline and deterministically.</summary>
public static class BuiltinModels
{
    /// <summary>Bumped whenever a builtin's architecture, initialisation or training changes.</summary>
    public const int Version = 1;

    /// <summary>The identity of a builtin in fingerprints: its name, generator version and seed.</summary>
    public static string Identity(string name, int seed) => $"{name} v{Version} seed {seed}";

    /// <summary>Writes the builtin model into the stage's folder.</summary>
    public static ResolvedModel Create(string name, int seed, StageWorkspace workspace) =>
        throw new StageFailedException($"builtin:{name} is not available yet: its model classes are being ported; use a diffusers folder or hf: model");
}
