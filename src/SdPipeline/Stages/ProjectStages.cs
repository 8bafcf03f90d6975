using SdPipeline.BaseModel;
using SdPipeline.Data;
using SdPipeline.Latents;
using SdPipeline.Pipeline;
using SdPipeline.Reporting;
using SdPipeline.Sampling;
using SdPipeline.Training;

namespace SdPipeline.Stages;

/// <summary>
/// The project's pipeline, model, download → latents → train → sample → report: the one place that names every
/// stage. <c>sdpipe plan</c>, <c>sdpipe run</c> and the fingerprints read it, and a test checks that
/// <c>build/build.cake</c> mirrors it. Each stage declares itself (its <c>Definition</c>, runner included).
/// </summary>
public static class ProjectStages
{
    /// <summary>The stages in dependency order.</summary>
    public static StageGraph Graph { get; } = new(
    [
        ModelStage.Definition,
        DownloadStage.Definition,
        LatentsStage.Definition,
        // The train stage samples its validation prompts with the sampling layer, which sits above training: handed in here.
        TrainStage.Definition with { CreateRunner = _ => new TrainStage(ValidationSampler.Create) },
        SampleStage.Definition,
        ReportStage.Definition,
    ]);
}
