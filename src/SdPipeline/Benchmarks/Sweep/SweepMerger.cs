using SdPipeline.Config;
using SdPipeline.Files;
using SdPipeline.Pipeline;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>
/// <c>sdpipe benchmark --merge</c>: gathers whatever cell results the store holds for a config into
/// <c>benchmark.json</c> and <c>benchmark.md</c> in <c>artifacts/benchmark/</c>, running nothing. A cell's result is
/// its current fingerprint's artifact; where that cannot be computed (the model or dataset is not on this machine,
/// as in a CI job that only merges), the newest artifact recorded with the same cell settings stands in.
/// </summary>
public static class SweepMerger
{
    /// <summary>Merges the results of <paramref name="config"/>'s cells found in <paramref name="store"/>.</summary>
    public static SweepResult Merge(EffectiveConfig config, ArtifactStore store, FileHashCache hashes)
    {
        var results = new Dictionary<string, (CellResult, string)>();
        foreach (var cell in BenchmarkSweep.Cells(config))
        {
            var plan = BenchmarkSweep.Plan(config, cell, store, hashes);
            var manifest = plan.Fingerprint is not null && plan.Check() is { IsValid: true } status
                ? status.Manifest
                : SameSettings(plan, store);
            if (manifest is null) continue;
            results[cell.Id] = (CellResult.Read(store.ArtifactDirectory(BenchmarkSweep.StageName, manifest.Fingerprint)), manifest.Fingerprint);
        }
        hashes.Save();
        var section = config.Typed.Benchmark;
        return SweepResult.From(BenchmarkSweep.Cells(config), results, BenchmarkSweep.ConfigHash(config), section.WarmupSteps, section.TimedSteps);
    }

    /// <summary>Writes <c>benchmark.json</c> and <c>benchmark.md</c>; returns the JSON's path.</summary>
    public static string Write(SweepResult result, ArtifactStore store)
    {
        string path = BenchmarkSweep.ResultPath(store);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, result.ToJson() + "\n");
        AtomicFile.WriteAllText(Path.Combine(Path.GetDirectoryName(path)!, BenchmarkSweep.TableFile), result.ToMarkdown());
        return path;
    }

    // Only when the fingerprint cannot be computed: a cell built elsewhere with the same settings, newest first.
    private static Manifest? SameSettings(CellPlan plan, ArtifactStore store)
    {
        if (plan.Errors.Count == 0) return null;
        var settings = BenchmarkSweep.CellSettings(plan.Config, plan.Cell);
        return store.Manifests(BenchmarkSweep.StageName)
            .FirstOrDefault(m => Newtonsoft.Json.Linq.JToken.DeepEquals(m.Inputs().Config, settings));
    }
}
