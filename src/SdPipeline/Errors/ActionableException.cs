namespace SdPipeline.Errors;

/// <summary>
/// An error the user can act on: the message names what is wrong (the file, field or key) and the fix, so the CLI
/// prints only the message, with no stack trace, and exits with <see cref="ExitCode"/>. Each layer derives its own
/// type from this one (<c>ConfigException</c>, <c>WeightsException</c>, <c>DiffusersConfigException</c>, ...), so a
/// model or scheduler needs to know nothing of the CLI, and the CLI catches this one type instead of a list.
/// </summary>
public abstract class ActionableException : Exception
{
    /// <summary>Creates the exception.</summary>
    protected ActionableException(ErrorKind kind, string message, Exception? inner = null) : base(message, inner) => Kind = kind;

    /// <summary>Whether the configuration or the data (or a stage working on it) is at fault.</summary>
    public ErrorKind Kind { get; }

    /// <summary>The process exit code the CLI returns for this error.</summary>
    public int ExitCode => (int)Kind;
}

/// <summary>What an <see cref="ActionableException"/> blames; the value is the CLI's exit code.</summary>
public enum ErrorKind
{
    /// <summary>Bad data (a weights file, a model folder, a dataset), or a stage that cannot go on: exit code 1.</summary>
    Data = 1,

    /// <summary>Bad configuration or usage (a config key, a <c>--set</c> value, a stage's inputs): exit code 2.</summary>
    Configuration = 2,
}
