namespace SdPipeline.Hub;

/// <summary>
/// The Hugging Face Hub settings, from the same environment variables huggingface_hub reads, so the
/// tool shares a user's token, mirror and cache.
/// </summary>
/// <param name="Endpoint">HF_ENDPOINT (default https://huggingface.co).</param>
/// <param name="Token">HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN), else the token file <c>hf auth login</c> writes
/// (HF_TOKEN_PATH, else HF_HOME/token), stripped of spaces and line breaks as huggingface_hub does; never printed or stored.</param>
/// <param name="Offline">HF_HUB_OFFLINE=1: use only what is cached.</param>
/// <param name="HubCache">HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub.</param>
public sealed record HubSettings(Uri Endpoint, string? Token, bool Offline, string HubCache)
{
    /// <summary>Reads the settings from the environment.</summary>
    public static HubSettings FromEnvironment()
    {
        // As huggingface_hub's constants.py reads them, so both tools share one cache and one login.
        string endpoint = Variable("HF_ENDPOINT") ?? "https://huggingface.co";
        bool offline = (Variable("HF_HUB_OFFLINE") ?? Variable("TRANSFORMERS_OFFLINE"))?.ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";
        string home = Expand(Variable("HF_HOME")
            ?? Path.Combine(Variable("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "huggingface"));
        // huggingface_hub's order (utils/_auth.py get_token): the environment, then the file `hf auth login` wrote.
        string? token = Clean(Variable("HF_TOKEN") ?? Variable("HUGGING_FACE_HUB_TOKEN"))
            ?? Clean(ReadTokenFile(Expand(Variable("HF_TOKEN_PATH") ?? Path.Combine(home, "token"))));
        string cache = Expand(Variable("HF_HUB_CACHE") ?? Variable("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(home, "hub"));
        return new HubSettings(new Uri(endpoint.TrimEnd('/') + "/"), token, offline, cache);
    }

    private static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    /// <summary>Python's <c>os.path.expandvars(os.path.expanduser(path))</c>: a leading <c>~</c>, then <c>$NAME</c> and <c>${NAME}</c> (unknown names stay).</summary>
    private static string Expand(string path)
    {
        if (path == "~" || path.StartsWith("~/", StringComparison.Ordinal))
            path = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + path[1..];
        return System.Text.RegularExpressions.Regex.Replace(path, @"\$(\w+|\{[^}]*\})",
            m => Environment.GetEnvironmentVariable(m.Value.Trim('$', '{', '}')) ?? m.Value);
    }

    /// <summary>
    /// A token as huggingface_hub's <c>_clean_token</c> leaves it: without line breaks and surrounding spaces (a secret pasted
    /// with its newline would otherwise make every request fail: a header value cannot hold one), null when nothing is left.
    /// </summary>
    private static string? Clean(string? token) => token?.Replace("\r", "").Replace("\n", "").Trim() is { Length: > 0 } clean ? clean : null;

    private static string? ReadTokenFile(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllText(path) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // unreadable: as if not logged in, and the Hub's refusal says what to set
        }
    }

    /// <summary>The settings without the token, for logs.</summary>
    public override string ToString() => $"endpoint {Endpoint}, token {(Token is null ? "not set" : "set")}, offline {Offline}, cache {HubCache}";
}
