namespace SdPipeline.Hub;

/// <summary>A model on the Hub as written in <c>model.base</c>: <c>hf:org/name</c> or <c>hf:org/name@revision</c>.</summary>
/// <param name="Repo">The repository, <c>org/name</c>.</param>
/// <param name="Revision">Branch, tag or commit (default <c>main</c>).</param>
public sealed record HubModelRef(string Repo, string Revision)
{
    /// <summary>Parses <c>hf:org/name[@revision]</c>; null when <paramref name="text"/> is not an <c>hf:</c> reference.</summary>
    public static HubModelRef? TryParse(string text)
    {
        if (!text.StartsWith("hf:", StringComparison.Ordinal)) return null;
        string rest = text[3..];
        int at = rest.IndexOf('@');
        string repo = at < 0 ? rest : rest[..at];
        string revision = at < 0 ? "main" : rest[(at + 1)..];
        if (repo.Split('/') is not [{ Length: > 0 } org, { Length: > 0 } name] || revision.Length == 0)
            throw new Config.ConfigException($"model.base '{text}': expected hf:org/name or hf:org/name@revision");
        if (org is "." or ".." || name is "." or ".." || repo.Any(c => c == '\\' || char.IsControl(c)) || !HubPaths.IsSafeRevision(revision))
            throw new Config.ConfigException($"model.base '{text}': the organisation, name and revision cannot be '.', '..', hold a backslash or begin with '/'");
        return new HubModelRef(repo, revision);
    }

    /// <inheritdoc />
    public override string ToString() => $"hf:{Repo}@{Revision}";
}
