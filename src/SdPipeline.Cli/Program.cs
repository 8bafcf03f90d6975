using System.CommandLine;
using System.Runtime.InteropServices;
using SdPipeline.Cli;
using SdPipeline.Cli.Commands;
using SdPipeline.Errors;

// Before anything loads libtorch: the process replaces itself with itself under tcmalloc when it is installed (returns
// otherwise), and some settings are read once, at libtorch's first allocation or its OpenMP start.
SdPipeline.Runtime.NativeAllocator.UseTcmalloc();
SdPipeline.Runtime.NativeRuntimeSettings.Apply();

// Ctrl+C and SIGTERM cancel the running stage, which stops at its next safe point; its partial work stays
// in the store's .partial folder for the next run to resume.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancellation.Cancel(); };
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; cancellation.Cancel(); });

var root = new RootCommand("sdpipe: fine-tune Stable Diffusion as a chain of cached stages.");
GlobalOptions.AddTo(root);
root.Subcommands.Add(PlanCommand.Create(cancellation.Token));
root.Subcommands.Add(RunCommand.Create(cancellation.Token));
root.Subcommands.Add(GcCommand.Create(cancellation.Token));
root.Subcommands.Add(ConfigCommand.Create());
root.Subcommands.Add(DoctorCommand.Create());
root.Subcommands.Add(PathCommand.Create(cancellation.Token));
root.Subcommands.Add(ModelCommand.Create());
root.Subcommands.Add(VerifyCommand.Create());
root.Subcommands.Add(BenchCommand.Create(cancellation.Token));
root.Subcommands.Add(BenchmarkCommand.Create(cancellation.Token));
root.Subcommands.Add(LoraCommand.Create());

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors) Console.Error.WriteLine($"error: {error.Message}");
    Console.Error.WriteLine("Run `sdpipe --help` (or `sdpipe VERB --help`) for usage.");
    return ExitCodes.Usage;
}

// libtorch's own warnings stay out of the log (doctor shows them); only verbs that do tensor work load libtorch for it.
if (parsed.CommandResult.Command.Name is "run" or "verify" or "bench" or "benchmark" or "model" or "lora" or "doctor"
    || parsed.CommandResult.Command.Parents.OfType<Command>().Any(c => c.Name is "bench" or "model" or "lora"))
    SdPipeline.Runtime.LibTorchLog.Apply(showWarnings: parsed.CommandResult.Command.Name == "doctor");

try
{
    return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (ActionableException e)
{
    // Every layer's "your input is wrong" error: the message names the fix, the kind chooses the exit code.
    Console.Error.WriteLine($"error: {e.Message}");
    return e.ExitCode;
}
catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
{
    Console.Error.WriteLine("interrupted: partial work is kept and the next run resumes from it");
    return ExitCodes.StageFailure;
}
catch (IOException e) when (SdPipeline.Files.DiskFull.Is(e))
{
    // Not a bug to show a stack trace for: the message names the file, and what is half-written is no artifact.
    Console.Error.WriteLine($"error: {e.Message}: {SdPipeline.Files.DiskFull.Advice}");
    return ExitCodes.StageFailure;
}
catch (Exception e)
{
    Console.Error.WriteLine($"error: {e.GetType().Name}: {e.Message}");
    Console.Error.WriteLine(e.StackTrace);
    return ExitCodes.StageFailure;
}
