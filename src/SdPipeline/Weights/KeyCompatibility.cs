namespace SdPipeline.Weights;

/// <summary>How a checkpoint's key names may differ from a module's, for checkpoints written by older tools.</summary>
/// <param name="IgnoredKeys">Keys that may be present in the file and are not part of the module (legacy buffers).</param>
/// <param name="Aliases">Legacy file key → module key renames (for example old VAE attention names).</param>
public sealed record KeyCompatibility(IReadOnlySet<string> IgnoredKeys, IReadOnlyDictionary<string, string> Aliases)
{
    /// <summary>No differences allowed.</summary>
    public static KeyCompatibility Strict { get; } = new(new HashSet<string>(), new Dictionary<string, string>());

    /// <summary>
    /// The module key <paramref name="name"/> stands for in <paramref name="file"/>, or null when the file holds that key
    /// under its current name too: of both spellings the current one counts, whatever the header's order.
    /// </summary>
    public string? KeyOf(string name, SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!Aliases.TryGetValue(name, out string? renamed)) return name;
        return file.Contains(renamed) ? null : renamed;
    }
}
