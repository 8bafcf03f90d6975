using SdPipeline.Errors;

namespace SdPipeline.Config;

/// <summary>A configuration or usage error: the CLI prints the message and exits with code 2.</summary>
public sealed class ConfigException(string message) : ActionableException(ErrorKind.Configuration, message);
