namespace SdPipeline.Pipeline;

/// <summary>
/// A pipeline's stages and edges. The project's graph is <c>Stages.ProjectStages.Graph</c>: the single source of
/// truth that <c>sdpipe plan</c>, <c>sdpipe run</c> and the Cake script's tasks follow.
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
}
