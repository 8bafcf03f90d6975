using Newtonsoft.Json;
using SdPipeline.Config;

namespace SdPipeline.Reporting;

/// <summary>One config key whose effective value is not its default.</summary>
/// <param name="Path">The key (<c>train.learning_rate</c>).</param>
/// <param name="DefaultJson">The default value as compact JSON.</param>
/// <param name="ValueJson">The effective value as compact JSON.</param>
public sealed record ConfigDifference(string Path, string DefaultJson, string ValueJson)
{
    /// <summary>The differences of an effective config from the defaults, in schema order.</summary>
    public static IReadOnlyList<ConfigDifference> From(EffectiveConfig config) =>
        config.DifferencesFromDefaults()
            .Select(d => new ConfigDifference(d.Path, d.Default.ToString(Formatting.None), d.Value.ToString(Formatting.None)))
            .ToList();
}
