using SdPipeline.Errors;

namespace SdPipeline.Pipeline;

/// <summary>A stage's inputs cannot be resolved (an unknown dataset, a missing local folder): a configuration error.</summary>
public sealed class StageInputException(string message) : ActionableException(ErrorKind.Configuration, message);
