namespace SdPipeline.Weights;

/// <summary>How a checkpoint's key names may differ from a module's, for checkpoints written by older tools.</summary>
/// <param name="IgnoredKeys">Keys that may be present in the file and are not part of the module (legacy buffers).</param>
/// <param name="Aliases">Legacy file key → module key renames (for example old VAE attention names).</param>
public sealed record KeyCompatibility(IReadOnlySet<string> IgnoredKeys, IReadOnlyDictionary<string, string> Aliases)
{
    /// <summary>No differences allowed.</summary>
    public static KeyCompatibility Strict { get; } = new(new HashSet<string>(), new Dictionary<string, string>());
}
