using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Files;

namespace SdPipeline.Models.Shared;

/// <summary>Writes a model <c>config.json</c> the way diffusers' <c>save_config</c> does: every key, sorted, indented by 2.</summary>
internal static class DiffusersConfigWriter
{
    /// <summary>The diffusers version whose model semantics this port mirrors (git 58eb52c0).</summary>
    public const string DiffusersVersion = "0.40.0.dev0";

    /// <summary>Every <see cref="DiffusersKeyAttribute"/> property of <paramref name="config"/> under its key.</summary>
    public static JObject Keys(object config)
    {
        var keys = new JObject();
        foreach (var (property, key) in DiffusersKeyAttribute.PropertiesOf(config.GetType()))
            keys[key.Name] = Value(key, property.GetValue(config));
        return keys;
    }

    private static JToken Value(DiffusersKeyAttribute key, object? value) => value switch
    {
        null => JValue.CreateNull(),
        IReadOnlyList<int> values when key.ScalarOrList => IntOrList(values),
        double number when key.WholeAsInteger && number == Math.Floor(number) => new JValue((long)number),
        string text => new JValue(text),
        System.Collections.IEnumerable values => new JArray(values.Cast<object>()),
        _ => new JValue(value),
    };

    public static JObject WithHeader(string className, JObject keys)
    {
        var all = new JObject { ["_class_name"] = className, ["_diffusers_version"] = DiffusersVersion };
        foreach (var property in keys.Properties()) all[property.Name] = property.Value.DeepClone();
        return new JObject(all.Properties().OrderBy(p => p.Name, StringComparer.Ordinal));
    }

    /// <summary>
    /// Sets <paramref name="key"/> of a config another tool wrote, so that diffusers reads the value: a key the file lists
    /// under <c>_use_default_values</c> is dropped at load (the loading class's default wins), so it leaves that list.
    /// </summary>
    public static void Set(JObject config, string key, JToken value)
    {
        config[key] = value;
        if (config["_use_default_values"] is JArray defaulted)
            foreach (var listed in defaulted.Where(k => k.Type == JTokenType.String && k.Value<string>() == key).ToList())
                listed.Remove();
    }

    public static void Write(string path, JObject config) =>
        AtomicFile.WriteAllText(path, config.ToString(Formatting.Indented) + "\n");

    // A one-element list stands for diffusers' scalar form (the same value for every block).
    private static JToken IntOrList(IReadOnlyList<int>? values) =>
        values is null ? JValue.CreateNull() : values.Count == 1 ? new JValue(values[0]) : new JArray(values);
}
