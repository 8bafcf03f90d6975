using System.CommandLine;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Pipeline;
using SdPipeline.Stages;

namespace SdPipeline.Cli.Commands;

/// <summary><c>sdpipe plan</c>: every stage as cached or stale, and why.</summary>
internal static class PlanCommand
{
    private static readonly Option<bool> Json = new("--json") { Description = "Print the plan as JSON." };
    private static readonly Option<bool> Verify = new("--verify") { Description = "Rehash every artifact file instead of checking sizes, and every input file (a dataset folder, a local model) instead of trusting its size and modification time." };
    private static readonly Option<string?> GithubOutput = new("--github-output")
    {
        Description = "Append STAGE_fingerprint, STAGE_status and STAGE_path lines to this file (default: $GITHUB_OUTPUT) for actions/cache keys.",
        Arity = ArgumentArity.ZeroOrOne,
    };

    public static Command Create(CancellationToken cancellation)
    {
        var command = new Command("plan", "Show every stage as cached or stale, and why; warn (stderr) of what a stage still to run will refuse.") { Json, Verify, GithubOutput };
        command.SetAction(result =>
        {
            var config = GlobalOptions.LoadConfig(result);
            var store = GlobalOptions.Store(result);
            var plans = new Planner(ProjectStages.Graph, store, GlobalOptions.Hashes(store)).Plan(config, result.GetValue(Verify), cancellation);

            if (result.GetValue(Json)) Console.WriteLine(ToJson(plans, store, config).ToString(Formatting.Indented));
            else foreach (var plan in plans) Console.WriteLine(Describe(plan));
            // What `sdpipe run` would refuse, said before a runner spends hours on the stages ahead of it (stderr: stdout is the plan).
            foreach (var plan in plans.Where(p => p.Status != StageStatus.Cached))
                foreach (string problem in plan.Stage.ConfigProblems(config))
                    Console.Error.WriteLine($"warning: {plan.Stage.Name} will refuse this config: {problem}");

            if (result.GetResult(GithubOutput) is not null)
            {
                string? path = result.GetValue(GithubOutput) ?? Environment.GetEnvironmentVariable("GITHUB_OUTPUT");
                if (string.IsNullOrEmpty(path))
                    throw new Config.ConfigException("--github-output: no file given and GITHUB_OUTPUT is not set");
                File.AppendAllLines(path, GithubOutputLines(plans, store));
            }
            return plans.Any(p => p.Status == StageStatus.Error) ? ExitCodes.Usage : ExitCodes.Success;
        });
        return command;
    }

    /// <summary>One line per stage: "download: stale — download.count changed 64 → 128 [0f1e2d3c4b5a6978]".</summary>
    internal static string Describe(StagePlan plan)
    {
        string status = plan.Status.ToString().ToLowerInvariant();
        string fingerprint = plan.Fingerprint is null ? "" : $" [{ArtifactStore.Short(plan.Fingerprint)}]";
        string implemented = (plan.Stage.CreateRunner is not null) ? "" : " (stage not implemented yet)";
        return plan.Reasons.Count == 0
            ? $"{plan.Stage.Name}: {status}{fingerprint}{implemented}"
            : $"{plan.Stage.Name}: {status} — {string.Join("; ", plan.Reasons)}{fingerprint}{implemented}";
    }

    internal static JArray ToJson(IEnumerable<StagePlan> plans, ArtifactStore store, Config.EffectiveConfig config) => new(plans.Select(plan => new JObject
    {
        ["stage"] = plan.Stage.Name,
        ["cake_task"] = plan.Stage.CakeTask,
        ["status"] = plan.Status.ToString().ToLowerInvariant(),
        ["fingerprint"] = plan.Fingerprint,
        ["reasons"] = new JArray(plan.Reasons),
        ["refuses"] = new JArray(plan.Status == StageStatus.Cached ? [] : plan.Stage.ConfigProblems(config)),
        ["artifact"] = plan.ArtifactDirectory is null ? null : Path.GetRelativePath(Environment.CurrentDirectory, plan.ArtifactDirectory),
        ["upstream"] = new JArray(plan.Stage.Upstream),
        ["implemented"] = (plan.Stage.CreateRunner is not null),
        ["description"] = plan.Stage.Description,
    }));

    /// <summary>The step outputs: <c>STAGE_fingerprint</c>, <c>STAGE_status</c>, <c>STAGE_path</c> per stage.</summary>
    internal static IEnumerable<string> GithubOutputLines(IEnumerable<StagePlan> plans, ArtifactStore store)
    {
        foreach (var plan in plans)
        {
            yield return $"{plan.Stage.Name}_fingerprint={plan.Fingerprint ?? ""}";
            yield return $"{plan.Stage.Name}_status={plan.Status.ToString().ToLowerInvariant()}";
            yield return $"{plan.Stage.Name}_path={(plan.ArtifactDirectory is null ? "" : Path.GetRelativePath(Environment.CurrentDirectory, plan.ArtifactDirectory))}";
        }
    }
}
