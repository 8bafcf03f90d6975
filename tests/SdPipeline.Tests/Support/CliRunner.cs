using System.Diagnostics;

namespace SdPipeline.Tests.Support;

/// <summary>The result of running a process.</summary>
public sealed record ProcessResult(int ExitCode, string Output, string Error)
{
    public string All => Output + Error;
}

/// <summary>Runs sdpipe (or a script) as a separate process, as users and Cake do.</summary>
public static class CliRunner
{
    /// <summary>Runs <c>dotnet sdpipe.dll ARGS</c> in <paramref name="workingDirectory"/>.</summary>
    public static ProcessResult Sdpipe(string workingDirectory, IDictionary<string, string>? environment, params string[] arguments) =>
        Run("dotnet", [RepoPaths.CliDll, .. arguments], workingDirectory, environment, TimeSpan.FromMinutes(5));

    /// <summary>Starts <c>dotnet sdpipe.dll ARGS</c> without waiting.</summary>
    public static Task<ProcessResult> SdpipeAsync(string workingDirectory, IDictionary<string, string>? environment, params string[] arguments) =>
        Task.Run(() => Sdpipe(workingDirectory, environment, arguments));

    /// <summary>Runs a program and captures its output.</summary>
    public static ProcessResult Run(string program, IEnumerable<string> arguments, string workingDirectory, IDictionary<string, string>? environment, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', arguments)} did not finish within {timeout}");
        }
        process.WaitForExit();
        return new ProcessResult(process.ExitCode, output.Result, error.Result);
    }
}
