using SdPipeline.Errors;

namespace SdPipeline.Pipeline;

/// <summary>A stage failed for a reason the user can act on; the CLI prints the message and exits with code 1.</summary>
public sealed class StageFailedException : ActionableException
{
    /// <summary>Creates the exception.</summary>
    public StageFailedException(string message) : base(ErrorKind.Data, message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public StageFailedException(string message, Exception inner) : base(ErrorKind.Data, message, inner) { }
}
