using SdPipeline.Config;
using SdPipeline.Progress;

namespace SdPipeline.Pipeline;

/// <summary>Runs one stage: checks that its upstream artifacts exist, then builds it (or finds it cached).</summary>
public sealed class StageExecutor(StageGraph graph, ArtifactStore store, FileHashCache hashes, Func<StageDefinition, IStageRunner>? runners = null)
{
    /// <summary>Runs <paramref name="stageName"/> for <paramref name="config"/>.</summary>
    /// <exception cref="StageInputException">The stage's inputs cannot be resolved, or an upstream stage is not built (usage: run the chain).</exception>
    /// <exception cref="StageFailedException">The stage failed.</exception>
    public BuildOutcome Run(string stageName, EffectiveConfig config, bool force, Action<string> log, IProgressSink progress, CancellationToken cancellation)
    {
        var stage = graph.Get(stageName);
        // sdpipe run refuses its own stage's config problems (exit 2) and warns of every downstream stage's as it
        // starts, so the first stage of a chain already says that sampling will fail, not the last after hours of training.
        if (stage.ConfigProblems(config) is { Count: > 0 } problems)
            throw new Config.ConfigException($"{stageName}: {string.Join("; ", problems)}");
        foreach (string downstream in graph.Downstream(stageName))
            foreach (string problem in graph.Get(downstream).ConfigProblems(config))
                log($"warning: {downstream} will refuse this config: {problem}");
        var runner = runners is not null ? runners(stage)
            : stage.CreateRunner?.Invoke(graph) ?? throw new StageFailedException($"stage '{stage.Name}' ({stage.Description}) has no runner");
        var plans = new Planner(graph, store, hashes).Plan(config, cancellation: cancellation);
        var plan = plans.Single(p => p.Stage.Name == stageName);
        if (plan.Status == StageStatus.Error)
            throw new StageInputException($"{stageName}: {string.Join("; ", plan.Reasons)}");
        // The chain's other stages, built or still to build, are this config's too: gc with another config keeps them while it runs.
        using var lease = RunLease.Take(store, plans);

        var upstream = new Dictionary<string, string>();
        foreach (string name in stage.Upstream)
        {
            var upstreamPlan = plans.Single(p => p.Stage.Name == name);
            // Usage, not a failure: nothing ran, and the fix is to run the chain (exit code 2, as README's table says).
            if (upstreamPlan.Status != StageStatus.Cached)
                throw new StageInputException(
                    $"{stageName} needs stage '{name}', which is not built for this config ({string.Join("; ", upstreamPlan.Reasons)}); " +
                    $"run `sdpipe run {name}` first, or `./build.sh --target={stage.CakeTask}` to run the chain");
            upstream[name] = upstreamPlan.ArtifactDirectory!;
        }

        string shortFp = ArtifactStore.Short(plan.Fingerprint!);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var outcome = store.Build(plan.Inputs!, config.Json, (folder, resuming) =>
        {
            log(resuming
                ? $"{stageName}: building {shortFp}, resuming an interrupted run"
                : $"{stageName}: building {shortFp} ({string.Join("; ", plan.Reasons)})");
            var workspace = new StageWorkspace(stage, plan.Fingerprint!, folder, resuming, upstream, config, store, log, progress, cancellation)
            {
                ContinueFrom = plan.Continuation,
            };
            return runner.Run(workspace);
        }, force, log, cancellation);
        new RunLog(store).Append(new RunLogEntry(DateTime.UtcNow, stageName, outcome.Manifest.Fingerprint, outcome.CacheHit, Math.Round(clock.Elapsed.TotalSeconds, 3)));
        return outcome;
    }
}
