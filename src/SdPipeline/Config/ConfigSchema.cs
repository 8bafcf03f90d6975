using System.Reflection;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using Newtonsoft.Json.Serialization;

namespace SdPipeline.Config;

/// <summary>Every configuration key, read by reflection from <see cref="RunConfig"/>'s section classes.</summary>
public static class ConfigSchema
{
    /// <summary>The serializer every config read and write goes through (snake_case keys, strict members).</summary>
    public static JsonSerializer Serializer { get; } = JsonSerializer.Create(new JsonSerializerSettings
    {
        ContractResolver = new DefaultContractResolver { NamingStrategy = new SnakeCaseNamingStrategy() },
        MissingMemberHandling = MissingMemberHandling.Error,
        FloatParseHandling = FloatParseHandling.Double,
    });

    private static readonly Lazy<IReadOnlyList<ConfigKey>> LazyKeys = new(Build);

    /// <summary>All keys, in declaration order (section by section).</summary>
    public static IReadOnlyList<ConfigKey> Keys => LazyKeys.Value;

    /// <summary>The section names, in declaration order.</summary>
    public static IReadOnlyList<string> Sections => Keys.Select(k => k.Section).Distinct().ToList();

    /// <summary>Finds a key by its dotted path, or null.</summary>
    public static ConfigKey? Find(string path) => Keys.FirstOrDefault(k => k.Path == path);

    /// <summary>The defaults of every key, as the effective config of an empty profile.</summary>
    public static JObject Defaults() => JObject.FromObject(new RunConfig(), Serializer);

    /// <summary>The valid name nearest to <paramref name="name"/>, for "did you mean" messages.</summary>
    public static string Closest(string name, IEnumerable<string> candidates) =>
        candidates.OrderBy(c => Levenshtein(name, c)).ThenBy(c => c, StringComparer.Ordinal).First();

    private static IReadOnlyList<ConfigKey> Build()
    {
        var naming = new SnakeCaseNamingStrategy();
        var defaults = Defaults();
        var keys = new List<ConfigKey>();
        foreach (var section in typeof(RunConfig).GetProperties())
        {
            string sectionName = section.GetCustomAttribute<JsonPropertyAttribute>()?.PropertyName
                ?? naming.GetPropertyName(section.Name, false);
            foreach (var property in section.PropertyType.GetProperties())
            {
                var doc = property.GetCustomAttribute<ConfigKeyAttribute>()
                    ?? throw new InvalidOperationException($"{section.PropertyType.Name}.{property.Name} has no [ConfigKey] description");
                string name = naming.GetPropertyName(property.Name, false);
                keys.Add(new ConfigKey($"{sectionName}.{name}", property.PropertyType, defaults[sectionName]![name]!.DeepClone(),
                    doc.Description, doc.AllowedValues, property) { Range = ConfigRange.For(doc, property.PropertyType) });
            }
        }
        return keys;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
