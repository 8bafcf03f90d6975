using SdPipeline.Pipeline;

namespace SdPipeline.Downloads;

/// <summary>The one way the tool makes an HttpClient: redirects followed by <see cref="HttpDownloader"/> itself (so tokens stay on their host), no overall timeout (stalls are detected per read).</summary>
public static class HttpClients
{
    /// <summary>A new client for Hub and dataset downloads.</summary>
    public static HttpClient Create()
    {
        var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = System.Net.DecompressionMethods.None })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        http.DefaultRequestHeaders.UserAgent.ParseAdd($"sdpipe/{ArtifactStore.ToolVersion.Split('+')[0]}");
        return http;
    }

    /// <summary>Delay before the first retry; SDPIPE_RETRY_DELAY_MS overrides it (tests use a few ms).</summary>
    public static TimeSpan FirstRetryDelay =>
        TimeSpan.FromMilliseconds(int.TryParse(Environment.GetEnvironmentVariable("SDPIPE_RETRY_DELAY_MS"), out int ms) ? ms : 1000);
}
