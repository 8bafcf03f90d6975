using SdPipeline.Errors;

namespace SdPipeline.Schedulers;

/// <summary>
/// A scheduler name or <c>scheduler_config.json</c> SdPipeline cannot honour: an unknown name, a malformed or invalid
/// value, or an option whose code path is not ported. The message names the file or name, the key and the fix.
/// </summary>
public sealed class SchedulerConfigException(string message) : ActionableException(ErrorKind.Configuration, message);
