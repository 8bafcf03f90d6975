using SdPipeline.Errors;

namespace SdPipeline.Weights;

/// <summary>Weights that cannot be used as they are: a bad file, mismatched keys or shapes, an unsafe format.</summary>
public sealed class WeightsException(string message) : ActionableException(ErrorKind.Data, message);
