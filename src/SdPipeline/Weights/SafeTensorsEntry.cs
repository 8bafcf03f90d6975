using static TorchSharp.torch;

namespace SdPipeline.Weights;

/// <summary>One tensor listed in a safetensors header.</summary>
/// <param name="Name">The key.</param>
/// <param name="DType">Its scalar type.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Offset">Byte offset from the start of the file.</param>
/// <param name="Length">Byte length.</param>
public sealed record SafeTensorsEntry(string Name, ScalarType DType, long[] Shape, long Offset, long Length);
