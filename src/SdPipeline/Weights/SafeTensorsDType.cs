using static TorchSharp.torch;

namespace SdPipeline.Weights;

/// <summary>The safetensors dtype names and their TorchSharp equivalents.</summary>
public static class SafeTensorsDType
{
    private static readonly Dictionary<string, (ScalarType Type, int Size)> ByName = new(StringComparer.Ordinal)
    {
        ["F64"] = (ScalarType.Float64, 8),
        ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8),
        ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2),
        ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
    };

    /// <summary>The scalar type and element size of a safetensors dtype name.</summary>
    public static (ScalarType Type, int Size) Parse(string name, string file, string tensor) =>
        ByName.TryGetValue(name, out var found)
            ? found
            : throw new WeightsException($"{file}: tensor '{tensor}' has dtype '{name}', which is not supported (supported: {string.Join(", ", ByName.Keys)})");

    /// <summary>The safetensors name of a scalar type.</summary>
    public static string Name(ScalarType type) =>
        ByName.FirstOrDefault(p => p.Value.Type == type).Key
        ?? throw new WeightsException($"dtype {type} cannot be stored in safetensors by this tool");
}
