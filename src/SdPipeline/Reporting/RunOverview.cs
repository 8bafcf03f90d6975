namespace SdPipeline.Reporting;

/// <summary>What a run was: the header of the report.</summary>
/// <param name="ModelSource">The base model (<c>model.base</c>, e.g. <c>hf:runwayml/stable-diffusion-v1-5</c> or a folder).</param>
/// <param name="DatasetName">The dataset's registry name (<c>download.dataset</c>, e.g. <c>shapes</c>).</param>
/// <param name="Device">The device the stages ran on (<c>cpu</c>, <c>cuda:0</c>).</param>
/// <param name="ToolVersion">Version of sdpipe.</param>
/// <param name="TorchSharpVersion">Version of the TorchSharp assembly.</param>
/// <param name="LibTorchVersion">Version of the native libtorch.</param>
/// <param name="GitCommit">Commit of the repository that ran, or null when it is not a git checkout.</param>
/// <param name="Timestamp">When the report was made.</param>
public sealed record RunOverview(
    string ModelSource,
    string DatasetName,
    string Device,
    string ToolVersion,
    string TorchSharpVersion,
    string LibTorchVersion,
    string? GitCommit,
    DateTimeOffset Timestamp)
{
    /// <summary>The numerics self-check's verdict before training (and the workaround in force), or null when the train stage recorded none.</summary>
    public string? Numerics { get; init; }
}
