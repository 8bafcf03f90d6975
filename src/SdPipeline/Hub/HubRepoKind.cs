namespace SdPipeline.Hub;

/// <summary>The kinds of Hub repository the tool reads.</summary>
public enum HubRepoKind
{
    /// <summary>A model repository (<c>org/name</c>).</summary>
    Model,

    /// <summary>A dataset repository (<c>datasets/org/name</c>).</summary>
    Dataset,
}
