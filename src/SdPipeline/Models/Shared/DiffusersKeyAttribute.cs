using System.Reflection;

namespace SdPipeline.Models.Shared;

/// <summary>
/// The <c>config.json</c> key a model config property is read from and written to. As diffusers'
/// <c>register_to_config</c> makes a model's constructor arguments its config, a config record here is its keyed
/// properties: <see cref="DiffusersConfigReader.Keys{T}"/> reads them and <see cref="DiffusersConfigWriter.Keys"/>
/// writes them. The property's type says how the value is parsed, and its initial value (the Python default) what an
/// absent key means; the flags cover the keys whose JSON form the type alone does not say.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class DiffusersKeyAttribute(string name) : Attribute
{
    /// <summary>The key, as the Python <c>__init__</c> names the argument.</summary>
    public string Name { get; } = name;

    /// <summary>An integer list that diffusers also takes as one integer (the same for every block); written as one integer when it has one element.</summary>
    public bool ScalarOrList { get; set; }

    /// <summary>One integer that diffusers also takes per block; a list is accepted when its entries are equal (differing values are not ported).</summary>
    public bool UniformList { get; set; }

    /// <summary>A flag the Python code only tests for truth (<c>if upcast_attention:</c>), so <c>null</c> (None) reads as false.</summary>
    public bool NullIsFalse { get; set; }

    /// <summary>A number whose Python default is an integer literal: written without a fraction when integral, as diffusers would.</summary>
    public bool WholeAsInteger { get; set; }

    /// <summary>The keyed properties of <paramref name="type"/>, in declaration order (the order keys are read and checked).</summary>
    public static IReadOnlyList<(PropertyInfo Property, DiffusersKeyAttribute Key)> PropertiesOf(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Property: p, Key: p.GetCustomAttribute<DiffusersKeyAttribute>()))
            .Where(p => p.Key is not null)
            .OrderBy(p => p.Property.MetadataToken)
            .Select(p => (p.Property, p.Key!))
            .ToList();
}
