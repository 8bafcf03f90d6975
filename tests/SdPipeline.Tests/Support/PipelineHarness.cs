using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;

namespace SdPipeline.Tests.Support;

/// <summary>Runs real stages in-process against a temporary artifact store, with a dataset registry of the test's making.</summary>
public sealed class PipelineHarness : IDisposable
{
    private readonly TempFolder _temp = new();

    public PipelineHarness() => Store = new ArtifactStore(_temp.File("artifacts"));

    public ArtifactStore Store { get; }

    public List<string> Log { get; } = [];

    public string Root => _temp.Path;

    /// <summary>Writes a registry with one dataset called "test" and returns the --set overrides that select it.</summary>
    public string[] Dataset(JObject entry)
    {
        string registry = _temp.File("datasets.json");
        File.WriteAllText(registry, new JObject { ["datasets"] = new JObject { ["test"] = entry } }.ToString());
        return ["download.dataset=test", $"download.registry={registry}"];
    }

    /// <summary>A local image folder dataset of PNGs with captions.</summary>
    public string[] ImageFolder(IEnumerable<(string Name, byte[] Png, string Caption)> images)
    {
        string folder = _temp.File("images");
        Directory.CreateDirectory(folder);
        var metadata = new List<string>();
        foreach (var (name, png, caption) in images)
        {
            File.WriteAllBytes(Path.Combine(folder, name), png);
            metadata.Add(new JObject { ["file_name"] = name, ["text"] = caption }.ToString(Newtonsoft.Json.Formatting.None));
        }
        File.WriteAllLines(Path.Combine(folder, "metadata.jsonl"), metadata);
        return Dataset(new JObject { ["source"] = folder });
    }

    public static EffectiveConfig Config(params string[] sets) => ConfigLoader.Load(null, sets);

    public BuildOutcome Run(string stage, params string[] sets) =>
        new StageExecutor(ProjectStages.Graph, Store, new FileHashCache(null))
            .Run(stage, Config(sets), false, line => { lock (Log) Log.Add(line); }, NullProgress.Instance, CancellationToken.None);

    /// <summary>Runs <paramref name="stages"/> in order with the same overrides.</summary>
    public BuildOutcome RunChain(string[] stages, params string[] sets)
    {
        BuildOutcome? last = null;
        foreach (string stage in stages) last = Run(stage, sets);
        return last!;
    }

    public StagePlan Plan(string stage, params string[] sets) =>
        new Planner(ProjectStages.Graph, Store, new FileHashCache(null)).Plan(Config(sets)).Single(p => p.Stage.Name == stage);

    public void Dispose() => _temp.Dispose();
}
