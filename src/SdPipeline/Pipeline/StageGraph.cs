using SdPipeline.BaseModel;
using SdPipeline.Data;
using SdPipeline.Latents;
using SdPipeline.Sampling;
using SdPipeline.Training;

namespace SdPipeline.Pipeline;

/// <summary>
/// The pipeline's stages and edges: the single source of truth that <c>sdpipe plan</c>, <c>sdpipe run</c>
/// and the Cake script's tasks follow (a test checks that <c>build/build.cake</c> mirrors it).
/// </summary>
public sealed class StageGraph
{
    /// <summary>The stages in dependency order.</summary>
    public IReadOnlyList<StageDefinition> Stages { get; }

    /// <summary>Creates a graph; stages must be listed after their upstream stages.</summary>
    public StageGraph(IReadOnlyList<StageDefinition> stages)
    {
        var seen = new HashSet<string>();
        foreach (var stage in stages)
        {
            foreach (string upstream in stage.Upstream)
                if (!seen.Contains(upstream))
                    throw new ArgumentException($"stage '{stage.Name}' lists upstream '{upstream}' before it is defined", nameof(stages));
            if (!seen.Add(stage.Name))
                throw new ArgumentException($"stage '{stage.Name}' is defined twice", nameof(stages));
        }
        Stages = stages;
    }

    /// <summary>The stage called <paramref name="name"/>.</summary>
    /// <exception cref="Config.ConfigException">No such stage (names the closest).</exception>
    public StageDefinition Get(string name) =>
        Stages.FirstOrDefault(s => s.Name == name)
        ?? throw new Config.ConfigException($"unknown stage '{name}'; did you mean '{Config.ConfigSchema.Closest(name, Stages.Select(s => s.Name))}'? " +
            $"(stages: {string.Join(", ", Stages.Select(s => s.Name))})");

    /// <summary>The stages downstream of <paramref name="name"/>, transitively.</summary>
    public IReadOnlyList<string> Downstream(string name)
    {
        var result = new List<string>();
        var frontier = new HashSet<string> { name };
        foreach (var stage in Stages)
            if (stage.Upstream.Any(frontier.Contains))
            {
                frontier.Add(stage.Name);
                result.Add(stage.Name);
            }
        return result;
    }

    /// <summary>The project's pipeline: model, download → latents → train → sample → report.</summary>
    public static StageGraph Default { get; } = new(
    [
        new StageDefinition("model", "Model", 1, [], [],
            "Resolve the base model (builtin:tiny, a Hub repo or a local diffusers folder)")
        {
            ExternalInputs = ModelStage.ExternalInputs,
        },
        new StageDefinition("download", "Download", 1,
            ["download.dataset", "download.count", "download.min_side", "download.max_pixels", "download.heldout_fraction", "download.missing_caption"], [],
            "Fetch, verify and normalise the dataset named in datasets.json")
        {
            ExternalInputs = DownloadStage.ExternalInputs,
        },
        new StageDefinition("latents", "PrecomputeLatents", LatentsStage.SchemaVersion, LatentsStage.ConfigKeys, ["model", "download"],
            "Encode images with the VAE and captions with the text encoder into shards")
        {
            ExternalInputs = LatentsStage.ExternalInputs,
            UpstreamByContent = new HashSet<string> { "model" },
        },
        new StageDefinition("train", "Train", 1, TrainStage.ConfigKeys, ["model", "latents"],
            "Fine-tune the UNet on the latent cache"),
        new StageDefinition("sample", "Sample", SampleStage.SchemaVersion, SampleStage.ConfigKeys, ["model", "download", "train"],
            "Generate images from the base and the fine-tuned weights")
        {
            ExternalInputs = SampleStage.ExternalInputs,
        },
        new StageDefinition("report", "Report", 1, [], ["download", "train", "sample"],
            "Write report.html, report.md and summary.json")
        {
            ExternalInputs = Reporting.ReportStage.ExternalInputs,
        },
    ]);
}
