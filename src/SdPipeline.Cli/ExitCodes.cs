namespace SdPipeline.Cli;

/// <summary>The exit codes scripts can rely on.</summary>
internal static class ExitCodes
{
    /// <summary>Success (including a cache hit).</summary>
    public const int Success = 0;

    /// <summary>A stage failed (or was interrupted), or its data is bad.</summary>
    public const int StageFailure = (int)SdPipeline.Errors.ErrorKind.Data;

    /// <summary>Bad usage or configuration.</summary>
    public const int Usage = (int)SdPipeline.Errors.ErrorKind.Configuration;
}
