using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Files;

namespace SdPipeline.Models.Shared;

/// <summary>Writes a model <c>config.json</c> the way diffusers' <c>save_config</c> does: every key, sorted, indented by 2.</summary>
internal static class DiffusersConfigWriter
{
    /// <summary>The diffusers version whose model semantics this port mirrors (git 58eb52c0).</summary>
    public const string DiffusersVersion = "0.40.0.dev0";

    public static JObject WithHeader(string className, JObject keys)
    {
        var all = new JObject { ["_class_name"] = className, ["_diffusers_version"] = DiffusersVersion };
        foreach (var property in keys.Properties()) all[property.Name] = property.Value.DeepClone();
        return new JObject(all.Properties().OrderBy(p => p.Name, StringComparer.Ordinal));
    }

    public static void Write(string path, JObject config) =>
        AtomicFile.WriteAllText(path, config.ToString(Formatting.Indented) + "\n");

    /// <summary>A one-element list stands for diffusers' scalar form (the same value for every block).</summary>
    public static JToken IntOrList(IReadOnlyList<int>? values) =>
        values is null ? JValue.CreateNull() : values.Count == 1 ? new JValue(values[0]) : new JArray(values);
}
