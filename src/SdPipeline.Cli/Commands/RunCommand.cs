using System.CommandLine;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe run STAGE</c>: build one stage, or say it is cached and return at once.</summary>
internal static class RunCommand
{
    private static readonly Argument<string> Stage = new("stage")
    {
        Description = $"The stage to run: {string.Join(", ", ProjectStages.Graph.Stages.Select(s => s.Name))}.",
    };

    private static readonly Option<bool> Force = new("--force") { Description = "Rebuild even when a valid artifact exists." };

    public static Command Create(CancellationToken cancellation)
    {
        var command = new Command("run", "Run one stage (its upstream stages must be built; Cake targets run the chain).") { Stage, Force };
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result);
            var store = GlobalOptions.Store(result);
            string stage = result.GetValue(Stage)!;
            var executor = new StageExecutor(ProjectStages.Graph, store, GlobalOptions.Hashes(store));
            var outcome = SpectreProgress.Run(progress =>
                executor.Run(stage, config, result.GetValue(Force), Console.WriteLine, progress, cancellation));
            string where = Path.GetRelativePath(Environment.CurrentDirectory, outcome.Directory);
            Console.WriteLine(outcome.CacheHit
                ? $"{stage}: cached [{ArtifactStore.Short(outcome.Manifest.Fingerprint)}] — nothing to do ({where})"
                : $"{stage}: built [{ArtifactStore.Short(outcome.Manifest.Fingerprint)}] in {outcome.Manifest.DurationSeconds:0.0} s → {where}");
            return ExitCodes.Success;
        });
        return command;
    }
}
