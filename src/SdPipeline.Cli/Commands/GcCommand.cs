using System.CommandLine;
using SdPipeline.Pipeline;
using SdPipeline.Progress;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe gc</c> (alias <c>clean</c>): remove artifacts the current config does not reference.</summary>
internal static class GcCommand
{
    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "List what would be removed, remove nothing." };

    public static Command Create()
    {
        var command = new Command("gc", "Remove artifacts the current config does not reference (and leftovers of interrupted builds).") { DryRun };
        command.Aliases.Add("clean");
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result);
            var store = GlobalOptions.Store(result);
            var plans = new Planner(StageGraph.Default, store, GlobalOptions.Hashes(store)).Plan(config);
            var collector = new GarbageCollector(store);
            bool dryRun = result.GetValue(DryRun);
            var removed = collector.Collect(plans, dryRun);
            foreach (var entry in removed)
                Console.WriteLine($"{(dryRun ? "would remove" : "removed")} {Path.GetRelativePath(Environment.CurrentDirectory, entry.Path)} ({ProgressFormat.Bytes(entry.Bytes)})");
            Console.WriteLine($"{(dryRun ? "would free" : "freed")} {ProgressFormat.Bytes(removed.Sum(r => r.Bytes))} in {removed.Count} folders");
            return ExitCodes.Success;
        });
        return command;
    }
}
