using System.CommandLine;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;

namespace SdPipeline.Cli.Commands;

/// <summary>
/// <c>sdpipe gc</c> (alias <c>clean</c>): remove artifacts the current config does not reference; with
/// <c>--max-size</c> or <c>--older-than</c>, only as much as those limits ask (for stores that persist on a runner).
/// </summary>
internal static class GcCommand
{
    private const double MaxOlderThanDays = 36_500;

    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "List what would be removed, remove nothing." };

    private static readonly Option<string?> MaxSize = new("--max-size")
    {
        HelpName = "SIZE",
        Description = "Bound the whole store: remove the least recently used artifacts and downloads until it fits (50G, 500GB, 1T; " +
            "K/M/G/T are powers of 1024 as in df -h). The current config's artifacts are never removed.",
    };

    private static readonly Option<double?> OlderThan = new("--older-than")
    {
        HelpName = "DAYS",
        Description = "Remove artifacts, leftovers of interrupted builds and dataset downloads last used more than DAYS days ago " +
            "(the current config's are kept).",
    };

    public static Command Create(CancellationToken cancellation)
    {
        var command = new Command("gc", "Remove artifacts the current config does not reference (and leftovers of interrupted builds); " +
            "with --max-size or --older-than, only what those limits ask.") { DryRun, MaxSize, OlderThan };
        command.Aliases.Add("clean");
        command.SetAction(result =>
        {
            var limits = Limits(result.GetValue(MaxSize), result.GetValue(OlderThan));
            var config = GlobalOptions.LoadConfig(result);
            var store = GlobalOptions.Store(result);
            var plans = new Planner(ProjectStages.Graph, store, GlobalOptions.Hashes(store)).Plan(config, cancellation: cancellation);
            bool dryRun = result.GetValue(DryRun);
            var outcome = new GarbageCollector(store).Collect(plans, limits, dryRun);

            foreach (var entry in outcome.Removed)
                Console.WriteLine($"{(dryRun ? "would remove" : "removed")} {Path.GetRelativePath(Environment.CurrentDirectory, entry.Path)} " +
                    $"({ProgressFormat.Bytes(entry.Bytes)}; {entry.Reason})");
            foreach (string note in outcome.Kept) Console.WriteLine($"kept: {note}");
            Console.WriteLine($"{(dryRun ? "would free" : "freed")} {ProgressFormat.Bytes(outcome.Removed.Sum(r => r.Bytes))} in {outcome.Removed.Count} folders; " +
                $"store {ProgressFormat.Bytes(outcome.StoreBytesBefore)} → {ProgressFormat.Bytes(outcome.StoreBytesAfter)}" +
                (limits.MaxBytes is { } max ? $" (limit {ProgressFormat.Bytes(max)})" : ""));
            if (limits.MaxBytes is { } limit && outcome.StoreBytesAfter > limit)
                Console.Error.WriteLine($"warning: the store ({store.Root}) is still {ProgressFormat.Bytes(outcome.StoreBytesAfter)}, over --max-size " +
                    $"{ProgressFormat.Bytes(limit)}: what is left belongs to the current config, is in use, or is not an artifact gc manages " +
                    "(see the kept: lines); give the store more disk or lower checkpoints_total_limit");
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>The limits the options ask for; bad values are usage errors (exit 2) that show the accepted forms.</summary>
    internal static GcLimits Limits(string? maxSize, double? olderThanDays)
    {
        long? maxBytes = null;
        if (maxSize is not null)
        {
            try
            {
                maxBytes = ByteSize.Parse(maxSize);
            }
            catch (FormatException e)
            {
                throw new ConfigException($"--max-size: {e.Message}");
            }
        }
        // A century bounds it: TimeSpan (and the date it is subtracted from) cannot hold ten million days.
        if (olderThanDays is < 0 or > MaxOlderThanDays or double.NaN)
            throw new ConfigException($"--older-than: {olderThanDays} is not a number of days (0 to {MaxOlderThanDays}, for example 30)");
        return new GcLimits(maxBytes, olderThanDays is { } days ? TimeSpan.FromDays(days) : null);
    }
}
