using System.CommandLine;
using SdPipeline.Pipeline;
using SdPipeline.Stages;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe path STAGE [FILE]</c>: where the current config's artifact of a stage is, for scripts.</summary>
internal static class PathCommand
{
    private static readonly Argument<string> Stage = new("stage") { Description = "The stage." };

    private static readonly Argument<string?> File = new("file")
    {
        Description = "A file inside the artifact (for example report.md).",
        Arity = ArgumentArity.ZeroOrOne,
    };

    public static Command Create(CancellationToken cancellation)
    {
        var command = new Command("path", "Print the absolute path of a stage's artifact for the current config (exit 1 when it is not built).") { Stage, File };
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result);
            var store = GlobalOptions.Store(result);
            string stage = ProjectStages.Graph.Get(result.GetValue(Stage)!).Name;
            var plan = new Planner(ProjectStages.Graph, store, GlobalOptions.Hashes(store)).Plan(config, cancellation: cancellation).Single(p => p.Stage.Name == stage);
            if (plan.Status != StageStatus.Cached)
                throw new StageFailedException($"{stage} is not built for this config ({string.Join("; ", plan.Reasons)})");
            string path = result.GetValue(File) is { } file ? System.IO.Path.Combine(plan.ArtifactDirectory!, file) : plan.ArtifactDirectory!;
            Console.WriteLine(path);
            return ExitCodes.Success;
        });
        return command;
    }
}
