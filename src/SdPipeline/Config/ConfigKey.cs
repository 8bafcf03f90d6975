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
