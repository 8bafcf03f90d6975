using System.Reflection;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Config;

/// <summary>One documented configuration key, such as <c>download.count</c>.</summary>
/// <param name="Path">Dotted path: <c>section.key</c>.</param>
/// <param name="Type">The CLR type of the value.</param>
/// <param name="Default">The default value as JSON.</param>
/// <param name="Description">What the key does.</param>
/// <param name="AllowedValues">Accepted values of a string key; empty when any string is accepted.</param>
/// <param name="Property">The property that holds the value.</param>
public sealed record ConfigKey(string Path, Type Type, JToken Default, string Description, IReadOnlyList<string> AllowedValues, PropertyInfo Property)
{
    /// <summary>The accepted numbers of a numeric key (or of each element of a numeric list).</summary>
    public ConfigRange Range { get; init; } = ConfigRange.Any;

    /// <summary>Whether the key (or each element of its list) is a number.</summary>
    public bool IsNumeric => (Type.IsArray ? Type.GetElementType()! : Type) is var t
        && (t == typeof(int) || t == typeof(long) || t == typeof(double) || t == typeof(float));

    /// <summary>The type and, for numbers, the range: <c>integer ≥ 1</c>, <c>number in [0, 1)</c>.</summary>
    public string TypeAndRange
    {
        get
        {
            var element = Type.IsArray ? Type.GetElementType()! : Type;
            string range = IsNumeric ? Range.Describe(element == typeof(int) || element == typeof(long)) : "";
            return range.Length > 0 ? $"{TypeName} {range}" : TypeName;
        }
    }

    /// <summary>The section part of the path.</summary>
    public string Section => Path[..Path.IndexOf('.')];

    /// <summary>The key part of the path.</summary>
    public string Name => Path[(Path.IndexOf('.') + 1)..];

    /// <summary>A short name of the value type for messages: integer, number, boolean, string, list of integers…</summary>
    public string TypeName => Describe(Type);

    private static string Describe(Type type)
    {
        if (type.IsArray) return "list of " + Describe(type.GetElementType()!) + "s";
        if (type == typeof(int) || type == typeof(long)) return "integer";
        if (type == typeof(double) || type == typeof(float)) return "number";
        if (type == typeof(bool)) return "boolean";
        return "string";
    }
}
