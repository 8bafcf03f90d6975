namespace SdPipeline.Hub;

/// <summary>
/// The Hugging Face Hub settings, from the same environment variables huggingface_hub reads, so the
/// tool shares a user's token, mirror and cache.
/// </summary>
/// <param name="Endpoint">HF_ENDPOINT (default https://huggingface.co).</param>
/// <param name="Token">HF_TOKEN (or the older HUGGING_FACE_HUB_TOKEN); never printed or stored.</param>
/// <param name="Offline">HF_HUB_OFFLINE=1: use only what is cached.</param>
/// <param name="HubCache">HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub.</param>
public sealed record HubSettings(Uri Endpoint, string? Token, bool Offline, string HubCache)
{
    /// <summary>Reads the settings from the environment.</summary>
    public static HubSettings FromEnvironment()
    {
        string endpoint = Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : "https://huggingface.co";
        string? token = Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } t ? t
            : Environment.GetEnvironmentVariable("HUGGING_FACE_HUB_TOKEN") is { Length: > 0 } legacy ? legacy : null;
        bool offline = Environment.GetEnvironmentVariable("HF_HUB_OFFLINE") is "1" or "true" or "TRUE" or "yes";
        string home = Environment.GetEnvironmentVariable("HF_HOME") is { Length: > 0 } h ? h
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface");
        string cache = Environment.GetEnvironmentVariable("HF_HUB_CACHE") is { Length: > 0 } c ? c : Path.Combine(home, "hub");
        return new HubSettings(new Uri(endpoint.TrimEnd('/') + "/"), token, offline, cache);
    }

    /// <summary>The settings without the token, for logs.</summary>
    public override string ToString() => $"endpoint {Endpoint}, token {(Token is null ? "not set" : "set")}, offline {Offline}, cache {HubCache}";
}
