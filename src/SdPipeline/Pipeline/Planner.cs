using Newtonsoft.Json.Linq;
using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>Computes every stage's fingerprint and says which are cached, which are stale, and why.</summary>
public sealed class Planner(StageGraph graph, ArtifactStore store, FileHashCache hashes)
{
    /// <summary>Plans every stage for <paramref name="config"/>; <paramref name="cancellation"/> ends any wait on a server.</summary>
    public IReadOnlyList<StagePlan> Plan(EffectiveConfig config, bool verify = false, CancellationToken cancellation = default)
    {
        var plans = new Dictionary<string, StagePlan>();
        if (verify) hashes.RehashOnce(); // inputs are rehashed too, not only the artifacts' files
        var context = new StageInputContext(config, hashes, store, cancellation);
        foreach (var stage in graph.Stages)
            plans[stage.Name] = PlanStage(stage, context, plans, verify);
        hashes.Save();
        return graph.Stages.Select(s => plans[s.Name]).ToList();
    }

    /// <summary>The fingerprint inputs of one stage, given its upstream plans.</summary>
    public static FingerprintInputs Inputs(StageDefinition stage, StageInputContext context, IReadOnlyDictionary<string, string> upstream) =>
        new(stage.Name, stage.SchemaVersion, context.Config.Slice(stage.ConfigKeys, stage.UnusedKeys?.Invoke(context.Config)), upstream,
            stage.ExternalInputs?.Invoke(context) ?? new Dictionary<string, string>());

    private StagePlan PlanStage(StageDefinition stage, StageInputContext context, Dictionary<string, StagePlan> plans, bool verify)
    {
        var broken = stage.Upstream.Where(u => plans[u].Fingerprint is null).ToList();
        if (broken.Count > 0)
            return new StagePlan(stage, null, null, StageStatus.Error,
                broken.Select(u => $"upstream {u} cannot be resolved").ToList(), null);

        FingerprintInputs inputs;
        try
        {
            inputs = Inputs(stage, context, stage.Upstream.Where(u => !stage.UpstreamByContent.Contains(u)).ToDictionary(u => u, u => plans[u].Fingerprint!));
        }
        catch (StageInputException e)
        {
            return new StagePlan(stage, null, null, StageStatus.Error, [e.Message], null);
        }

        string fingerprint = inputs.Compute();
        string folder = store.ArtifactDirectory(stage.Name, fingerprint);
        var status = store.Check(stage.Name, fingerprint, verify);
        if (status.IsValid)
            return new StagePlan(stage, inputs, fingerprint, StageStatus.Cached, [], folder);

        var reasons = status.Exists
            ? [status.Problem!]
            : ExplainNearest(inputs, store.Manifests(stage.Name), plans);
        var (continuation, startOver) = FindContinuation(stage, context.Config, inputs);
        if (continuation is not null) reasons = [.. reasons, continuation.Describe()];
        else if (startOver is not null) reasons = [.. reasons, $"starts over: {startOver}"];
        return new StagePlan(stage, inputs, fingerprint, StageStatus.Stale, reasons, folder) { Continuation = continuation };
    }

    /// <summary>
    /// The furthest earlier artifact the stage can continue (same schema, upstream and inputs; the stage judges the config),
    /// else why the nearest related one cannot be continued.
    /// </summary>
    private (StageContinuation? Continuation, string? StartOver) FindContinuation(StageDefinition stage, EffectiveConfig config, FingerprintInputs current)
    {
        if (stage.Continuation is null) return (null, null);
        StageContinuation? best = null;
        string? startOver = null;
        foreach (var earlier in store.Manifests(stage.Name))
        {
            var inputs = earlier.Inputs();
            if (inputs.SchemaVersion != current.SchemaVersion || !SameEntries(inputs.Upstream, current.Upstream) || !SameEntries(inputs.Inputs, current.Inputs))
                continue;
            if (!store.Check(stage.Name, earlier.Fingerprint).IsValid) continue;
            string folder = store.ArtifactDirectory(stage.Name, earlier.Fingerprint);
            var verdict = stage.Continuation(new ContinuationCandidate(config, current, earlier, folder));
            if (verdict is { From: { } from } && (best is null || verdict.Position > best.Position))
                best = new StageContinuation(earlier.Fingerprint, folder, verdict.Position, from);
            else if (verdict is { StartOverReason: { } reason }) startOver ??= reason;
        }
        return (best, best is null ? startOver : null);
    }

    private static bool SameEntries(IReadOnlyDictionary<string, string> a, IReadOnlyDictionary<string, string> b) =>
        a.Count == b.Count && a.All(e => b.TryGetValue(e.Key, out var value) && value == e.Value);

    /// <summary>
    /// Why <paramref name="current"/> differs from the earlier artifact nearest to it (the fewest differences; the newest of
    /// equals): after trying a setting and going back, the newest artifact is the experiment, not what the change replaces.
    /// </summary>
    public static IReadOnlyList<string> ExplainNearest(FingerprintInputs current, IReadOnlyList<Manifest> newestFirst, IReadOnlyDictionary<string, StagePlan> plans) =>
        newestFirst.Count == 0 ? ExplainChange(current, null, plans)
            : newestFirst.Select(m => ExplainChange(current, m, plans)).MinBy(reasons => reasons.Count)!;

    /// <summary>Why <paramref name="current"/> differs from the inputs of <paramref name="latest"/>, an earlier artifact of the stage.</summary>
    public static IReadOnlyList<string> ExplainChange(FingerprintInputs current, Manifest? latest, IReadOnlyDictionary<string, StagePlan> plans)
    {
        if (latest is null) return ["never built"];
        var previous = latest.Inputs();
        var reasons = new List<string>();
        if (previous.SchemaVersion != current.SchemaVersion)
            reasons.Add($"stage schema version changed {previous.SchemaVersion} → {current.SchemaVersion}");

        foreach (string key in current.Config.Properties().Select(p => p.Name).Union(previous.Config.Properties().Select(p => p.Name)).Order(StringComparer.Ordinal))
        {
            JToken? now = current.Config[key], before = previous.Config[key];
            if (before is null) reasons.Add($"{key} is new (= {ConfigLoader.Show(now)})");
            else if (now is null) reasons.Add($"{key} is no longer read");
            else if (!JToken.DeepEquals(now, before)) reasons.Add($"{key} changed {ConfigLoader.Show(before)} → {ConfigLoader.Show(now)}");
        }

        foreach (var (name, fingerprint) in current.Upstream)
        {
            if (previous.Upstream.TryGetValue(name, out var old) && old == fingerprint) continue;
            var upstream = plans.GetValueOrDefault(name);
            reasons.Add(upstream is { Status: StageStatus.Stale }
                ? $"upstream {name} is stale ({string.Join("; ", upstream.Reasons)})"
                : $"upstream {name} changed ({ArtifactStore.Short(old ?? "none")} → {ArtifactStore.Short(fingerprint)})");
        }

        var inputChanges = new Dictionary<string, List<string>> { ["is new"] = [], ["is gone"] = [], ["changed content"] = [] };
        foreach (string name in current.Inputs.Keys.Union(previous.Inputs.Keys).Order(StringComparer.Ordinal))
        {
            current.Inputs.TryGetValue(name, out var now);
            previous.Inputs.TryGetValue(name, out var before);
            if (now == before) continue;
            inputChanges[before is null ? "is new" : now is null ? "is gone" : "changed content"].Add(name);
        }
        foreach (var (change, names) in inputChanges)
        {
            // A switch of model or dataset changes every file at once: name a few, count the rest.
            if (names.Count <= 3) reasons.AddRange(names.Select(name => $"input {name} {change}"));
            else reasons.Add($"{names.Count} inputs {(change == "is new" ? "are new" : change == "is gone" ? "are gone" : "changed content")} ({string.Join(", ", names.Take(2))}, …)");
        }

        if (reasons.Count == 0) reasons.Add("no artifact for these inputs");
        return reasons;
    }
}
