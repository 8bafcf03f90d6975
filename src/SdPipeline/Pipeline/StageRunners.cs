using SdPipeline.BaseModel;
using SdPipeline.Data;
using SdPipeline.Latents;
using SdPipeline.Sampling;
using SdPipeline.Training;

namespace SdPipeline.Pipeline;

/// <summary>The runner of each stage that is built so far.</summary>
public static class StageRunners
{
    private static readonly Dictionary<string, Func<IStageRunner>> Factories = new()
    {
        ["model"] = () => new ModelStage(),
        ["download"] = () => new DownloadStage(),
        ["latents"] = () => new LatentsStage(),
        ["train"] = () => new TrainStage(),
        ["sample"] = () => new SampleStage(),
        ["report"] = () => new Reporting.ReportStage(StageGraph.Default),
    };

    /// <summary>The runner for <paramref name="stage"/>.</summary>
    /// <exception cref="StageFailedException">The stage is part of the graph but not implemented yet.</exception>
    public static IStageRunner For(StageDefinition stage) =>
        Factories.TryGetValue(stage.Name, out var create)
            ? create()
            : throw new StageFailedException(
                $"stage '{stage.Name}' ({stage.Description}) is not implemented yet; " +
                $"implemented stages: {string.Join(", ", Factories.Keys)}");

    /// <summary>Whether <paramref name="stage"/> has a runner.</summary>
    public static bool IsImplemented(string stage) => Factories.ContainsKey(stage);
}
