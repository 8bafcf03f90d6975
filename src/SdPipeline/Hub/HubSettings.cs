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
        string endpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : "https://huggingface.co";
        bool offline = Environment.GetEnvironmentVariable("HF_HUB_OFFLINE") is "1" or "true" or "TRUE" or "yes";
        string home = Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } h ? h
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface");
        // huggingface_hub's order (utils/_auth.py get_token): the environment, then the file `hf auth login` wrote.
        string? token = Clean(Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } t ? t : Environment.GetEnvironmentVariable("HUGGING_FACE_HUB_TOKEN"))
            ?? Clean(ReadTokenFile(Environment.GetEnvironmentVariable("HF_TOKEN_PATH") is { Length: > 0 } p ? p : Path.Combine(home, "token")));
        string cache = Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } c ? c : Path.Combine(home, "hub");
        return new HubSettings(new Uri(endpoint.TrimEnd('/') + "/"), token, offline, cache);
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
