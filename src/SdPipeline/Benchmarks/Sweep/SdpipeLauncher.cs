using System.Diagnostics;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>How a child <c>sdpipe</c> process ended.</summary>
/// <param name="ExitCode">Its exit code (128 + the signal when a signal ended it).</param>
/// <param name="TimedOut">Whether it was stopped at the timeout.</param>
/// <param name="Tail">Its last lines of output (stdout and stderr interleaved), for the failure message.</param>
public sealed record ChildOutcome(int ExitCode, bool TimedOut, IReadOnlyList<string> Tail)
{
    /// <summary>The exit code of a process ended by SIGKILL (what the kernel's out-of-memory killer sends).</summary>
    public const int Killed = 128 + 9;
}

/// <summary>
/// Starts <c>sdpipe</c> again as a child process with this invocation's global options (config, overrides, store,
/// device), so that each benchmark cell — and each stage a sweep builds first — runs with a fresh heap and cannot take
/// the sweep down with it. The child's output is passed through line by line.
/// </summary>
/// <param name="fileName">The program: the <c>dotnet</c> host or the <c>sdpipe</c> apphost.</param>
/// <param name="prefix">Arguments before the verb (<c>sdpipe.dll</c> under the dotnet host).</param>
/// <param name="globalArguments">The global options to repeat (<c>--config</c>, <c>--set</c>…, <c>--artifacts</c>, <c>--device</c>).</param>
/// <param name="output">Receives each line the child writes to stdout.</param>
/// <param name="error">Receives each line the child writes to stderr.</param>
public sealed class SdpipeLauncher(string fileName, IReadOnlyList<string> prefix, IReadOnlyList<string> globalArguments, Action<string> output, Action<string> error)
{
    private const int TailLines = 40;

    /// <summary>A launcher for the <c>sdpipe</c> this process runs: <paramref name="cliDll"/> under the same host.</summary>
    public static SdpipeLauncher ForCurrentProcess(string cliDll, IReadOnlyList<string> globalArguments, Action<string> output, Action<string> error)
    {
        string host = Environment.ProcessPath ?? "dotnet";
        bool dotnetHost = Path.GetFileNameWithoutExtension(host).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        return new SdpipeLauncher(host, dotnetHost ? [cliDll] : [], globalArguments, output, error);
    }

    /// <summary>The command line of a child, for the log.</summary>
    public string Describe(IReadOnlyList<string> arguments, IReadOnlyList<string>? overrides = null) =>
        "sdpipe " + string.Join(' ', Arguments(arguments, overrides ?? []).Select(a => a.Contains(' ') ? $"'{a}'" : a));

    /// <summary>
    /// Runs <c>sdpipe ARGUMENTS GLOBAL-OPTIONS</c> and then <paramref name="overrides"/> as <c>--set</c> (last, so they
    /// win over the user's), stopping it (with its children) at <paramref name="timeout"/> or when
    /// <paramref name="cancellation"/> is signalled (after a few seconds' grace, in which a Ctrl+C it also received can
    /// finish).
    /// </summary>
    /// <exception cref="OperationCanceledException">Cancelled (the child has been stopped).</exception>
    public ChildOutcome Run(IReadOnlyList<string> arguments, TimeSpan? timeout = null, IReadOnlyList<string>? overrides = null, CancellationToken cancellation = default)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in prefix.Concat(Arguments(arguments, overrides ?? []))) start.ArgumentList.Add(argument);

        var tail = new Queue<string>();
        void Keep(string line)
        {
            lock (tail)
            {
                tail.Enqueue(line);
                if (tail.Count > TailLines) tail.Dequeue();
            }
        }
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is { } line) { Keep(line); output(line); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) { Keep(line); error(line); } };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var clock = Stopwatch.StartNew();
        bool timedOut = false;
        while (!process.WaitForExit(200))
        {
            if (timeout is { } limit && clock.Elapsed > limit)
            {
                timedOut = true;
                process.Kill(entireProcessTree: true);
                break;
            }
            if (cancellation.IsCancellationRequested)
            {
                if (!process.WaitForExit(5000)) process.Kill(entireProcessTree: true);
                process.WaitForExit();
                cancellation.ThrowIfCancellationRequested();
            }
        }
        process.WaitForExit(); // drains the output
        lock (tail) return new ChildOutcome(process.ExitCode, timedOut, tail.ToList());
    }

    private IEnumerable<string> Arguments(IReadOnlyList<string> arguments, IReadOnlyList<string> overrides) =>
        arguments.Concat(globalArguments).Concat(overrides.SelectMany(o => new[] { "--set", o }));
}
