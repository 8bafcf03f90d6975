using SdPipeline.Config;
using SdPipeline.Pipeline;

namespace SdPipeline.Benchmarks.Sweep;

/// <summary>One cell of the sweep, planned (see <see cref="BenchmarkSweep.Plan"/>).</summary>
/// <param name="Cell">The cell.</param>
/// <param name="Config">Its training config.</param>
/// <param name="Inputs">What its fingerprint is computed from; null when an upstream stage cannot be resolved.</param>
/// <param name="UpstreamPlans">The plans of the model, download and latents stages for its config.</param>
/// <param name="Errors">Why the upstream stages cannot be resolved; empty when they can.</param>
/// <param name="Store">The artifact store.</param>
public sealed record CellPlan(
    BenchmarkCell Cell,
    EffectiveConfig Config,
    FingerprintInputs? Inputs,
    IReadOnlyList<StagePlan> UpstreamPlans,
    IReadOnlyList<string> Errors,
    ArtifactStore Store)
{
    /// <summary>The cell's fingerprint; null when <see cref="Errors"/> is not empty.</summary>
    public string? Fingerprint { get; } = Inputs?.Compute();

    /// <summary>The cell's artifact folder (built or not); null when it cannot be planned.</summary>
    public string? Directory => Fingerprint is null ? null : Store.ArtifactDirectory(BenchmarkSweep.StageName, Fingerprint);

    /// <summary>The upstream stages that are not built for this cell's config (model, download, latents at its resolution).</summary>
    public IReadOnlyList<StagePlan> Missing => UpstreamPlans.Where(p => p.Status != StageStatus.Cached).ToList();

    /// <summary>The artifact folders of the stages the cell trains from: <c>model</c> and <c>latents</c>.</summary>
    /// <exception cref="StageFailedException">One is not built (the message says how to build it).</exception>
    public IReadOnlyDictionary<string, string> UpstreamDirectories()
    {
        if (Errors.Count > 0) throw new StageInputException($"benchmark cell {Cell.Id}: {string.Join("; ", Errors)}");
        if (Missing.Count > 0)
            throw new StageFailedException($"benchmark cell {Cell.Id} needs {string.Join(", ", Missing.Select(p => p.Stage.Name))} built for its " +
                $"{Config.Typed.Latents.Resolution} px training resolution: run `sdpipe benchmark --prepare` (it builds them), " +
                $"or `sdpipe run {Missing[0].Stage.Name} --set latents.resolution={Config.Typed.Latents.Resolution}` and the stages after it");
        return UpstreamPlans.Where(p => p.Stage.Name is "model" or "latents").ToDictionary(p => p.Stage.Name, p => p.ArtifactDirectory!);
    }

    /// <summary>The cached result's status in the store, or null when the cell has not run.</summary>
    public ArtifactStatus Check() => Store.Check(BenchmarkSweep.StageName, Fingerprint ?? throw new InvalidOperationException($"cell {Cell.Id} cannot be planned: {string.Join("; ", Errors)}"));
}
