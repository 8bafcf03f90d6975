using System.Globalization;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Config;

/// <summary>Reads a run profile, checks every key and type, and applies <c>--set section.key=value</c> overrides.</summary>
public static class ConfigLoader
{
    /// <summary>Loads <paramref name="path"/> (or only defaults when null) and applies <paramref name="overrides"/>.</summary>
    /// <exception cref="ConfigException">A missing file, bad JSON, an unknown key or a wrongly typed value.</exception>
    public static EffectiveConfig Load(string? path, IEnumerable<string>? overrides = null)
    {
        var profile = path is null ? new JObject() : ReadProfile(path);
        string origin = path ?? "defaults";
        Validate(profile, origin);
        foreach (string assignment in overrides ?? [])
            ApplyOverride(profile, assignment);

        RunConfig typed;
        try
        {
            typed = profile.ToObject<RunConfig>(ConfigSchema.Serializer) ?? new RunConfig();
        }
        catch (JsonException e)
        {
            throw new ConfigException($"{origin}: {e.Message}");
        }
        var json = JObject.FromObject(typed, ConfigSchema.Serializer);
        return new EffectiveConfig(typed, json, path);
    }

    private static JObject ReadProfile(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"config file '{path}' not found (pass --config FILE; the profiles are in configs/)");
        try
        {
            // A key given twice is an error, not "the last one wins": the user meant one of them.
            var token = JToken.Parse(File.ReadAllText(path), new JsonLoadSettings { DuplicatePropertyNameHandling = DuplicatePropertyNameHandling.Error });
            return token as JObject ?? throw new ConfigException($"{path}: a profile is a JSON object with one object per section");
        }
        catch (JsonReaderException e)
        {
            throw new ConfigException($"{path}: invalid JSON at line {e.LineNumber}, position {e.LinePosition}: {e.Message}");
        }
    }

    private static void Validate(JObject profile, string origin)
    {
        foreach (var section in profile.Properties())
        {
            if (section.Name.StartsWith('$') || section.Name == "description")
                continue; // "$schema" and a free-text description are allowed at the top level
            if (!ConfigSchema.Sections.Contains(section.Name))
                throw new ConfigException($"{origin}: unknown section '{section.Name}'; did you mean '{ConfigSchema.Closest(section.Name, ConfigSchema.Sections)}'? " +
                    "(`sdpipe config --defaults` lists every key)");
            if (section.Value is not JObject keys)
                throw new ConfigException($"{origin}: section '{section.Name}' must be a JSON object");
            foreach (var key in keys.Properties())
            {
                string path = $"{section.Name}.{key.Name}";
                var schemaKey = ConfigSchema.Find(path) ?? throw UnknownKey(origin, path);
                key.Value = Coerce(schemaKey, key.Value, origin);
            }
        }
        profile.Remove("$schema");
        profile.Remove("description");
    }

    private static ConfigException UnknownKey(string origin, string path) =>
        DiffusersArguments.Explain(path) is { } explained
            ? new($"{origin}: unknown key '{path}'; {explained} (`sdpipe config --defaults` lists every key)")
            : new($"{origin}: unknown key '{path}'; did you mean '{ConfigSchema.Closest(path, ConfigSchema.Keys.Select(k => k.Path))}'? " +
            "(`sdpipe config --defaults` lists every key)");

    private static void ApplyOverride(JObject profile, string assignment)
    {
        int equals = assignment.IndexOf('=');
        if (equals <= 0)
            throw new ConfigException($"--set '{assignment}': expected section.key=value, for example --set download.count=128");
        string path = assignment[..equals].Trim();
        string text = assignment[(equals + 1)..];
        var key = ConfigSchema.Find(path) ?? throw UnknownKey("--set", path);
        JToken value = ParseText(key, text);
        var section = profile[key.Section] as JObject ?? new JObject();
        section[key.Name] = Coerce(key, value, "--set");
        profile[key.Section] = section;
    }

    private static JToken ParseText(ConfigKey key, string text)
    {
        if (key.Type == typeof(string))
            return new JValue(text);
        if (key.Type.IsArray && !text.TrimStart().StartsWith('['))
        {
            // Comma-separated shorthand: --set benchmark.resolutions=64,32
            var items = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            return new JArray(items.Select(item => ParseText(key with { Type = key.Type.GetElementType()! }, item)));
        }
        try
        {
            return JToken.Parse(text);
        }
        catch (JsonReaderException)
        {
            throw WrongType(key, "--set", text);
        }
    }

    /// <summary>Checks that <paramref name="value"/> fits <paramref name="key"/>'s type and returns it in canonical form.</summary>
    private static JToken Coerce(ConfigKey key, JToken value, string origin)
    {
        var type = key.Type;
        if (type.IsArray)
        {
            if (value is not JArray array) throw WrongType(key, origin, value.ToString(Formatting.None));
            var element = key with { Type = type.GetElementType()! };
            return new JArray(array.Select(item => Coerce(element, item, origin)));
        }
        if (type == typeof(string))
        {
            if (value.Type != JTokenType.String) throw WrongType(key, origin, value.ToString(Formatting.None));
            string text = value.Value<string>()!;
            if (key.AllowedValues.Count > 0 && !key.AllowedValues.Contains(text))
                throw new ConfigException($"{origin}: {key.Path} = '{text}' is not one of {string.Join(", ", key.AllowedValues)}");
            return value;
        }
        if (type == typeof(bool))
            return value.Type == JTokenType.Boolean ? value : throw WrongType(key, origin, value.ToString(Formatting.None));
        if (type == typeof(int) || type == typeof(long))
        {
            JToken integer = value.Type == JTokenType.Integer ? value
                : value.Type == JTokenType.Float && value.Value<double>() is var d && d == Math.Floor(d) && Math.Abs(d) < 9e15 ? new JValue((long)d)
                : throw WrongType(key, origin, value.ToString(Formatting.None));
            if (((JValue)integer).Value is System.Numerics.BigInteger)
                throw OutOfRange(key, origin, integer.ToString(Formatting.None));
            return CheckRange(key, integer, origin);
        }
        if (type == typeof(double) || type == typeof(float))
        {
            if (value.Type is JTokenType.Integer or JTokenType.Float)
                return CheckRange(key, new JValue(value.Value<double>()), origin);
            throw WrongType(key, origin, value.ToString(Formatting.None));
        }
        throw new InvalidOperationException($"config key {key.Path} has unsupported type {type.Name}");
    }

    private static JToken CheckRange(ConfigKey key, JToken value, string origin) =>
        key.Range.Contains(value.Value<double>()) ? value : throw OutOfRange(key, origin, Show(value));

    private static ConfigException OutOfRange(ConfigKey key, string origin, string text) =>
        new($"{origin}: {key.Path} = {text} is outside its range: {key.TypeAndRange}" +
            $" (default: {key.Default.ToString(Formatting.None)}; `sdpipe config --defaults` lists every key's range)");

    private static ConfigException WrongType(ConfigKey key, string origin, string text) =>
        new($"{origin}: {key.Path} expects {Article(key.TypeName)} {key.TypeName}, got {text}" +
            $" (default: {key.Default.ToString(Formatting.None)})");

    private static string Article(string noun) => "aeiou".Contains(noun[0]) ? "an" : "a";

    /// <summary>Formats a value for a message the way a user would type it.</summary>
    public static string Show(JToken? value) => value switch
    {
        null => "(absent)",
        JValue { Type: JTokenType.String } s => s.Value<string>()!,
        JValue { Type: JTokenType.Float } f => f.Value<double>().ToString("R", CultureInfo.InvariantCulture),
        _ => value.ToString(Formatting.None),
    };
}
