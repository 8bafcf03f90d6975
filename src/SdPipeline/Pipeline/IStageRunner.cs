using Newtonsoft.Json.Linq;

namespace SdPipeline.Pipeline;

/// <summary>Builds one stage's artifact. Each stage registers its runner in its <see cref="StageDefinition.CreateRunner"/>.</summary>
public interface IStageRunner
{
    /// <summary>Writes the artifact into <see cref="StageWorkspace.Directory"/> and returns figures for the manifest.</summary>
    JObject Run(StageWorkspace workspace);
}
