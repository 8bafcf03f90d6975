using Newtonsoft.Json.Linq;

namespace SdPipeline.Pipeline;

/// <summary>Builds one stage's artifact. Runners are registered by stage name in <see cref="StageRunners"/>.</summary>
public interface IStageRunner
{
    /// <summary>Writes the artifact into <see cref="StageWorkspace.Directory"/> and returns figures for the manifest.</summary>
    JObject Run(StageWorkspace workspace);
}
