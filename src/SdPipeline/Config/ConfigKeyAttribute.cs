namespace SdPipeline.Config;

/// <summary>Documents a configuration key: what it does, and (for strings) the values it accepts.</summary>
/// <param name="description">One sentence for `sdpipe config --defaults` and the README.</param>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ConfigKeyAttribute(string description) : Attribute
{
    /// <summary>What the key does.</summary>
    public string Description { get; } = description;

    /// <summary>The accepted values of a string key; empty when any string is accepted.</summary>
    public string[] AllowedValues { get; init; } = [];
}
