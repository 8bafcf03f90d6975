using Newtonsoft.Json.Linq;

namespace SdPipeline.Config;

/// <summary>A run profile after defaults and <c>--set</c> overrides: typed, and as JSON for fingerprints and manifests.</summary>
/// <param name="Typed">The typed sections.</param>
/// <param name="Json">Every key with its effective value.</param>
/// <param name="SourcePath">The profile file it was read from, or null for defaults only.</param>
public sealed record EffectiveConfig(RunConfig Typed, JObject Json, string? SourcePath)
{
    /// <summary>
    /// The values of <paramref name="keys"/> as one object (<c>{"download.count": 64, …}</c>). A key may name
    /// a whole section (<c>"train"</c>) to read every key in it. Keys in <paramref name="atDefault"/> are given their
    /// default value instead of their own (what a stage fingerprints for a key this config leaves unused).
    /// </summary>
    public JObject Slice(IEnumerable<string> keys, IEnumerable<string>? atDefault = null)
    {
        var slice = Values(keys);
        foreach (string key in atDefault ?? [])
        {
            if (!slice.ContainsKey(key)) continue;
            slice[key] = (ConfigSchema.Find(key) ?? throw new InvalidOperationException($"unknown config key '{key}'")).Default.DeepClone();
        }
        return slice;
    }

    private JObject Values(IEnumerable<string> keys)
    {
        var slice = new JObject();
        foreach (string key in keys)
        {
            if (!key.Contains('.'))
            {
                var section = Json[key] as JObject ?? throw new InvalidOperationException($"unknown config section '{key}'");
                foreach (var property in section.Properties())
                    slice[$"{key}.{property.Name}"] = property.Value.DeepClone();
                continue;
            }
            var schemaKey = ConfigSchema.Find(key) ?? throw new InvalidOperationException($"unknown config key '{key}'");
            slice[key] = Json[schemaKey.Section]![schemaKey.Name]!.DeepClone();
        }
        return (JObject)CanonicalJson.Sorted(slice);
    }

    /// <summary>The keys whose value differs from the default, as <c>path → (default, value)</c>.</summary>
    public IReadOnlyList<(string Path, JToken Default, JToken Value)> DifferencesFromDefaults() =>
        ConfigSchema.Keys
            .Select(k => (k.Path, k.Default, Value: Json[k.Section]![k.Name]!))
            .Where(d => !JToken.DeepEquals(d.Default, d.Value))
            .ToList();
}
