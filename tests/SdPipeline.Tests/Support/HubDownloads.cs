using SdPipeline.Downloads;
using SdPipeline.Hub;
using SdPipeline.Progress;

namespace SdPipeline.Tests.Support;

/// <summary>A model download from a test server's fake Hub into a test cache, wired as the model stage wires it.</summary>
public static class HubDownloads
{
    public static HubSnapshot Model(TestHttpServer server, string hubCache, string? token = "hf_token", bool offline = false,
        string? variant = null, int attempts = 5, string repo = "org/sd")
    {
        var settings = new HubSettings(server.BaseUri, token, offline, hubCache);
        var waits = new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5), Attempts = attempts };
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
        var client = new HubClient(http, settings, waits);
        var downloader = new HttpDownloader(http, client.Authorize) { PartSuffix = ".incomplete", Settings = waits };
        return new HubSnapshotDownloader(client, new HubCache(settings.HubCache), downloader, _ => { })
            .DownloadAsync(new HubModelRef(repo, "main"), variant, NullProgress.Instance, CancellationToken.None).GetAwaiter().GetResult();
    }
}
