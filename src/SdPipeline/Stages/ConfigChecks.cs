using SdPipeline.Config;

namespace SdPipeline.Stages;

/// <summary>
/// What each stage of the project would refuse in the config, found before anything runs. Each stage declares its own
/// check (<see cref="Pipeline.StageDefinition.CheckConfig"/>); <c>sdpipe run</c> applies them through the stage engine, and
/// a test puts every shipped config through them here.
/// </summary>
public static class ConfigChecks
{
    /// <summary>The problems of <paramref name="stage"/>'s settings in <paramref name="config"/>; empty when it can run.</summary>
    public static IReadOnlyList<string> Check(string stage, EffectiveConfig config) => ProjectStages.Graph.Get(stage).ConfigProblems(config);
}
