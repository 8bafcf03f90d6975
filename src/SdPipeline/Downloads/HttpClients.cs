using SdPipeline.Pipeline;

namespace SdPipeline.Downloads;

/// <summary>
/// The one way the tool makes an HttpClient: redirects followed by <see cref="HttpDownloader"/> itself (so tokens
/// stay on their host), a connect timeout, and no overall timeout (a large file may take hours: stalls are
/// detected per wait instead, by <see cref="HttpDownloader"/> and the Hub client).
/// </summary>
public static class HttpClients
{
    /// <summary>A new client for Hub and dataset downloads.</summary>
    public static HttpClient Create(DownloadSettings settings)
    {
        var http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            ConnectTimeout = settings.ConnectTimeout,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        http.DefaultRequestHeaders.UserAgent.ParseAdd($"sdpipe/{ArtifactStore.ToolVersion.Split('+')[0]}");
        return http;
    }
}
