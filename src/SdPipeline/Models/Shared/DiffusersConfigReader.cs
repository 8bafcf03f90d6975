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

    public int Int(string key, int @default) => Read(key, @default, AsInt);

    public int? NullableInt(string key, int? @default) => Read(key, @default, (k, t) => (int?)AsInt(k, t));

    public double Double(string key, double @default) => Read(key, @default, AsDouble);

    public double? NullableDouble(string key, double? @default) => Read(key, @default, (k, t) => (double?)AsDouble(k, t));

    public bool Bool(string key, bool @default) => Read(key, @default, (k, t) => t.Type == JTokenType.Boolean ? t.Value<bool>() : throw Malformed(k, t, "true or false"));

    /// <summary>
    /// A flag the Python code only tests for truth (<c>if upcast_attention:</c>), so <c>null</c> (None) means false there and
    /// here. SDXL base 1.0's UNet config writes <c>"upcast_attention": null</c>.
    /// </summary>
    public bool Flag(string key, bool @default) =>
        json.TryGetValue(key, out var value) && value.Type == JTokenType.Null ? Consumed(key, false) : Bool(key, @default);

    private bool Consumed(string key, bool value)
    {
        _consumed.Add(key);
        return value;
    }

    public string String(string key, string @default) => Read(key, @default, AsString);

    public string? NullableString(string key) => Read<string?>(key, null, AsString);

    public IReadOnlyList<string> StringList(string key, IReadOnlyList<string> @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsString(k, item)).ToArray() : throw Malformed(k, t, "a list of strings"));

    public IReadOnlyList<int> IntList(string key, IReadOnlyList<int> @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsInt(k, item)).ToArray() : throw Malformed(k, t, "a list of integers"));

    /// <summary>An integer or a list of integers; a single integer is returned as a one-element list.</summary>
    public IReadOnlyList<int>? IntOrList(string key, IReadOnlyList<int>? @default) =>
        Read(key, @default, (k, t) => t is JArray array ? array.Select(item => AsInt(k, item)).ToArray() : [AsInt(k, t)]);

    public IReadOnlyList<double>? NullableDoubleList(string key) =>
        Read<IReadOnlyList<double>?>(key, null, (k, t) => t is JArray array ? array.Select(item => AsDouble(k, item)).ToArray() : throw Malformed(k, t, "a list of numbers or null"));

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
