namespace SdPipeline.Hub;

/// <summary>
/// Checks on the names a Hub server (or a mirror set by HF_ENDPOINT, or a cache another tool wrote) hands
/// us before they become parts of local paths: a commit id names a snapshot folder, a hash names a blob,
/// a repository path names a file under the snapshot. A hostile answer such as <c>../../.bashrc</c> or
/// <c>/etc/passwd</c> would otherwise be written outside the cache.
/// </summary>
public static class HubPaths
{
    /// <summary>Whether <paramref name="text"/> is a full commit id: 40 lowercase hex digits.</summary>
    public static bool IsCommit(string? text) => IsHex(text, 40);

    /// <summary>
    /// What to add to the error for a local path <paramref name="written"/> that names nothing, when it has the shape of a
    /// Hub repository id (<c>org/name</c>, <c>org/name@revision</c>), as diffusers' scripts take one bare: the <c>hf:</c>
    /// form of <paramref name="key"/> to write instead; "" otherwise.
    /// </summary>
    public static string HubFormHint(string written, string key, string what) =>
        System.Text.RegularExpressions.Regex.IsMatch(written, @"^[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9](@[\w./-]+)?$") && !written.Contains("..", StringComparison.Ordinal)
            ? $"; for the Hugging Face Hub {what} write {key}=hf:{written}"
            : "";

    /// <summary>Whether <paramref name="text"/> is a SHA-256 (LFS oid): 64 lowercase hex digits.</summary>
    public static bool IsSha256(string? text) => IsHex(text, 64);

    /// <summary>
    /// Why <paramref name="path"/> is not a safe path inside a repository (relative, '/'-separated, no empty,
    /// '.' or '..' segment, no backslash, colon or control character), or null when it is.
    /// </summary>
    public static string? RelativePathProblem(string? path)
    {
        if (string.IsNullOrEmpty(path)) return "it is empty";
        if (path.Length > 4096) return "it is longer than 4096 characters";
        if (path[0] == '/' || Path.IsPathRooted(path)) return "it is absolute";
        if (path.Any(c => c == '\\' || c == ':' || char.IsControl(c))) return "it holds a backslash, colon or control character";
        if (path.Split('/').Any(segment => segment is "" or "." or "..")) return "it has an empty, '.' or '..' segment";
        return null;
    }

    /// <summary>
    /// Whether a revision a user typed (a branch or tag name, or a commit) can name a file under <c>refs/</c>:
    /// the same rules as a repository path.
    /// </summary>
    public static bool IsSafeRevision(string revision) => RelativePathProblem(revision) is null;

    private static bool IsHex(string? text, int length) => text is not null && text.Length == length && text.All(char.IsAsciiHexDigitLower);
}
