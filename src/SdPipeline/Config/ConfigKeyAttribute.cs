namespace SdPipeline.Config;

/// <summary>
/// Documents a configuration key: what it does, and the values it accepts (for strings, a list; for numbers,
/// an interval). The loader refuses anything else with exit code 2 before a stage starts, so a value that
/// would loop for ever, divide by zero or fail hours later never reaches one.
/// </summary>
/// <param name="description">One sentence for `sdpipe config --defaults` and the README.</param>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ConfigKeyAttribute(string description) : Attribute
{
    /// <summary>What the key does.</summary>
    public string Description { get; } = description;

    /// <summary>The accepted values of a string key; empty when any string is accepted.</summary>
    public string[] AllowedValues { get; init; } = [];

    /// <summary>The smallest accepted value of a numeric key (or of each element of a list).</summary>
    public double Min { get; init; } = double.NegativeInfinity;

    /// <summary>Whether <see cref="Min"/> itself is refused (a learning rate must be above 0).</summary>
    public bool MinExclusive { get; init; }

    /// <summary>The largest accepted value of a numeric key (or of each element of a list).</summary>
    public double Max { get; init; } = double.PositiveInfinity;

    /// <summary>Whether <see cref="Max"/> itself is refused (a probability below 1).</summary>
    public bool MaxExclusive { get; init; }

    /// <summary>A step an integer key must be a multiple of; 0 for none.</summary>
    public long MultipleOf { get; init; }
}
