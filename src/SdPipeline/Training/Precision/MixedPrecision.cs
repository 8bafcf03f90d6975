using SdPipeline.Config;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>
/// The training precision, from the config values of accelerate / diffusers' <c>--mixed_precision</c>:
/// <c>no</c> (float32 throughout), <c>fp16</c> (float16 autocast with dynamic loss scaling) or <c>bf16</c>
/// (bfloat16 autocast, no loss scaling: bfloat16 has float32's exponent range, so gradients do not underflow).
/// The parameters, their gradients and the optimizer state stay float32 in every mode.
/// </summary>
public sealed class MixedPrecision
{
    /// <summary>Float32 throughout.</summary>
    public static MixedPrecision No { get; } = new("no", null);

    /// <summary>Float16 autocast with dynamic loss scaling.</summary>
    public static MixedPrecision Fp16 { get; } = new("fp16", ScalarType.Float16);

    /// <summary>BFloat16 autocast without loss scaling.</summary>
    public static MixedPrecision Bf16 { get; } = new("bf16", ScalarType.BFloat16);

    /// <summary>Every mode, in the order the config documents them.</summary>
    public static IReadOnlyList<MixedPrecision> All { get; } = [No, Fp16, Bf16];

    private MixedPrecision(string name, ScalarType? autocastDtype)
    {
        Name = name;
        AutocastDtype = autocastDtype;
    }

    /// <summary>The config value: <c>no</c>, <c>fp16</c> or <c>bf16</c>.</summary>
    public string Name { get; }

    /// <summary>The dtype of the <see cref="Autocast"/> region the forward runs in; null for float32.</summary>
    public ScalarType? AutocastDtype { get; }

    /// <summary>
    /// Whether the loss must be scaled (float16 only: its smallest normal number, 6e-5, is above many gradient
    /// values, which would flush to zero). See <see cref="DynamicLossScaler"/>.
    /// </summary>
    public bool UsesLossScaling => AutocastDtype == ScalarType.Float16;

    /// <summary>Enters the autocast region of this mode (a region with autocast off for <c>no</c>).</summary>
    public IDisposable EnterAutocast() => Autocast.Enter(AutocastDtype);

    /// <summary>Parses a config value (case-insensitive).</summary>
    /// <param name="value">The value.</param>
    /// <param name="key">The config key it came from, for the error message.</param>
    /// <exception cref="ConfigException">The value is none of <c>no</c>, <c>fp16</c>, <c>bf16</c>.</exception>
    public static MixedPrecision Parse(string? value, string key = "mixed_precision") =>
        All.FirstOrDefault(p => string.Equals(p.Name, value?.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new ConfigException($"{key} = '{value}' is not a precision; use one of: {string.Join(", ", All.Select(p => p.Name))} " +
            "(no = float32, fp16 = float16 autocast with loss scaling, bf16 = bfloat16 autocast)");

    /// <inheritdoc />
    public override string ToString() => Name;
}
