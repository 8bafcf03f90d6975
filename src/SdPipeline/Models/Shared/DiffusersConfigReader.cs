using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Reads the keys of a diffusers <c>config.json</c> with the class defaults of the Python <c>__init__</c>
/// (a missing key means "default", as in diffusers), and remembers which keys it consumed so that the rest
/// can be reported instead of silently dropped.
/// </summary>
internal sealed class DiffusersConfigReader(JObject json, string source)
{
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    /// <summary>The JSON object of a <c>config.json</c> file.</summary>
    /// <exception cref="DiffusersConfigException">The file is missing or not valid JSON; the message names it.</exception>
    public static JObject ReadFile(string path)
    {
        if (!File.Exists(path)) throw new DiffusersConfigException($"{path}: file not found");
        try
        {
            return JObject.Parse(File.ReadAllText(path));
        }
        catch (JsonReaderException e)
        {
            throw new DiffusersConfigException($"{path}: invalid JSON: {e.Message}");
        }
    }

    /// <summary>
    /// A <typeparamref name="T"/> whose <see cref="DiffusersKeyAttribute"/> properties are read from their keys, in
    /// declaration order; an absent key keeps the property's initial value (the Python default).
    /// </summary>
    /// <exception cref="DiffusersConfigException">A value of the wrong form, named by key.</exception>
    public T Keys<T>() where T : new()
    {
        var config = new T();
        foreach (var (property, key) in DiffusersKeyAttribute.PropertiesOf(typeof(T)))
            property.SetValue(config, Key(key, property.PropertyType, property.GetValue(config)));
        return config;
    }

    private object? Key(DiffusersKeyAttribute key, Type type, object? @default)
    {
        string name = key.Name;
        if (key.ScalarOrList) return IntOrList(name, (IReadOnlyList<int>?)@default);
        if (key.UniformList) return UniformInt(name, (int)@default!);
        if (key.NullIsFalse) return Flag(name, (bool)@default!);
        if (type == typeof(int)) return Int(name, (int)@default!);
        if (type == typeof(int?)) return NullableInt(name, (int?)@default);
        if (type == typeof(double)) return Double(name, (double)@default!);
        if (type == typeof(double?)) return NullableDouble(name, (double?)@default);
        if (type == typeof(bool)) return Bool(name, (bool)@default!);
        if (type == typeof(string)) return Read(name, (string?)@default, AsString);
        if (type == typeof(IReadOnlyList<string>)) return StringList(name, (IReadOnlyList<string>)@default!);
        if (type == typeof(IReadOnlyList<int>)) return IntList(name, (IReadOnlyList<int>)@default!);
        if (type == typeof(IReadOnlyList<double>)) return NullableDoubleList(name, (IReadOnlyList<double>?)@default);
        throw new NotSupportedException($"{type.Name} is not a config key type ({name})");
    }

    private int Int(string key, int @default) => Read(key, @default, AsInt);

    private int? NullableInt(string key, int? @default) => Read(key, @default, (k, t) => (int?)AsInt(k, t));

    private double Double(string key, double @default) => Read(key, @default, AsDouble);

    private double? NullableDouble(string key, double? @default) => Read(key, @default, (k, t) => (double?)AsDouble(k, t));

    private bool Bool(string key, bool @default) => Read(key, @default, (k, t) => t.Type == JTokenType.Boolean ? t.Value<bool>() : throw Malformed(k, t, "true or false"));

    /// <summary>
    /// A flag the Python code only tests for truth (<c>if upcast_attention:</c>), so <c>null</c> (None) means false there and
    /// here. SDXL base 1.0's UNet config writes <c>"upcast_attention": null</c>.
    /// </summary>
    private bool Flag(string key, bool @default) =>
        json.TryGetValue(key, out var value) && value.Type == JTokenType.Null ? Consumed(key, false) : Bool(key, @default);

    private bool Consumed(string key, bool value)
    {
        _consumed.Add(key);
        return value;
    }

    private IReadOnlyList<string> StringList(string key, IReadOnlyList<string> @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsString(k, item)).ToArray() : throw Malformed(k, t, "a list of strings"));

    private IReadOnlyList<int> IntList(string key, IReadOnlyList<int> @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsInt(k, item)).ToArray() : throw Malformed(k, t, "a list of integers"));

    /// <summary>An integer or a list of integers; a single integer is returned as a one-element list.</summary>
    private IReadOnlyList<int>? IntOrList(string key, IReadOnlyList<int>? @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsInt(k, item)).ToArray() : [AsInt(k, t)]);

    // diffusers also takes per-block lists for these; Stable Diffusion never uses differing values, which are not ported.
    private int UniformInt(string key, int @default)
    {
        var values = IntOrList(key, [@default])!;
        if (values.Distinct().Count() != 1)
            throw Invalid(key, $"per-block values ([{string.Join(", ", values)}]) are not supported by this port; give one integer");
        return values[0];
    }

    private IReadOnlyList<double>? NullableDoubleList(string key, IReadOnlyList<double>? @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsDouble(k, item)).ToArray() : throw Malformed(k, t, "a list of numbers or null"));

    /// <summary>
    /// A key whose only supported value is its diffusers default: anything else selects a code path this port
    /// does not have, so it is refused rather than ignored.
    /// </summary>
    public void RequireDefault(string key, JToken @default)
    {
        _consumed.Add(key);
        if (!json.TryGetValue(key, out var value) || JToken.DeepEquals(value, @default)) return;
        throw Unsupported(key, value, Show(@default));
    }

    /// <summary>The error for a value whose code path is not ported.</summary>
    public DiffusersConfigException Unsupported(string key, JToken value, string supported) =>
        new DiffusersConfigException(
            $"{source}: \"{key}\": {Show(value)} is not supported by this Stable Diffusion 1.x/2.x/XL port (supported: {supported}). " +
            "The model needs code this tool does not have; use a Stable Diffusion 1.x, 2.x or XL checkpoint.");

    /// <summary>A key diffusers accepts that does not change these block types' computation: kept as written.</summary>
    public JToken Inert(string key, JToken @default)
    {
        _consumed.Add(key);
        return json.TryGetValue(key, out var value) ? value.DeepClone() : @default.DeepClone();
    }

    /// <summary>Keys neither read nor private (<c>_class_name</c>, <c>_diffusers_version</c>, ...).</summary>
    public IReadOnlyList<string> UnknownKeys() =>
        json.Properties().Select(p => p.Name).Where(k => !k.StartsWith('_') && !_consumed.Contains(k)).ToList();

    public DiffusersConfigException Invalid(string key, string problem) =>
        new($"{source}: \"{key}\": {problem}");

    private T Read<T>(string key, T @default, Func<string, JToken, T> parse)
    {
        _consumed.Add(key);
        if (!json.TryGetValue(key, out var value)) return @default;
        if (value.Type == JTokenType.Null)
            return @default is null ? @default : throw Malformed(key, value, $"a value (the default is {JsonConvert.SerializeObject(@default)})");
        return parse(key, value);
    }

    private int AsInt(string key, JToken token) =>
        token.Type == JTokenType.Integer || (token.Type == JTokenType.Float && token.Value<double>() == Math.Floor(token.Value<double>()))
            ? checked((int)token.Value<double>())
            : throw Malformed(key, token, "an integer");

    private double AsDouble(string key, JToken token) =>
        token.Type is JTokenType.Integer or JTokenType.Float ? token.Value<double>() : throw Malformed(key, token, "a number");

    private string AsString(string key, JToken token) =>
        token.Type == JTokenType.String ? token.Value<string>()! : throw Malformed(key, token, "a string");

    private DiffusersConfigException Malformed(string key, JToken value, string expected) =>
        new($"{source}: \"{key}\": expected {expected}, found {Show(value)}");

    private static string Show(JToken value) => value.ToString(Formatting.None);
}
