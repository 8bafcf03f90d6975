using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Downloads;

/// <summary>
/// A server that stops talking (never answers, stops mid-file, cannot be reached) ends an attempt within the
/// configured time, with a message that names the URL and the setting to change; it never hangs the tool.
/// </summary>
public sealed class StallTests : ServerTest
{
    private List<string> _log = null!;

    [SetUp]
    public void SetUp()
    {
        _log = [];
    }

    private static readonly byte[] Body = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 2000).Select(i => $"row {i}\n")));

    private long Download(Uri baseUri, DownloadSettings settings, string? sha256 = null)
    {
        using var http = HttpClients.Create(settings);
        var downloader = new HttpDownloader(http) { Settings = settings, Log = _log.Add };
        var request = new DownloadRequest(new Uri(baseUri, "data.bin"), Temp.File("data.bin"), sha256, null, "test: data.bin");
        // A guard against the hang under test, far above the timeouts the settings give, not a measurement.
        return downloader.DownloadAsync(request, NullProgress.Instance, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2)).GetAwaiter().GetResult();
    }

    [Test]
    public void Download_Should_FailNamingTheUrlAndTheSetting_When_TheServerAcceptsAndNeverAnswers()
    {
        // Given a server that reads the request and never sends a byte back
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = Body, NeverAnswer = true });
        var settings = new DownloadSettings { StallTimeout = TimeSpan.FromSeconds(1), Attempts = 2, FirstRetryDelay = TimeSpan.FromMilliseconds(5) };

        // When the file is downloaded
        var error = Assert.Throws<StageFailedException>(() => Download(Server.BaseUri, settings))!;

        // Then each attempt gave up waiting for the headers, and the error names the URL, the setting and the attempts
        Assert.That(error.Message, Does.Contain(new Uri(Server.BaseUri, "data.bin").ToString())
            .And.Contain("sent no response headers within download.timeout_seconds = 1 s")
            .And.Contain("download.retries = 2"));
        Assert.That(Server.Requests.Count(r => r.Contains("/data.bin")), Is.EqualTo(2));
        Assert.That(File.Exists(Temp.File("data.bin")), Is.False);
    }

    [Test]
    public void Download_Should_ResumeAndFinish_When_TheServerStopsSendingMidFile()
    {
        // Given a server that sends the headers and a third of the file, then goes silent with the connection open
        var route = Server.Serve("/data.bin", Body);
        route.StallAfterBytes = Body.Length / 3;
        var settings = new DownloadSettings { StallTimeout = TimeSpan.FromSeconds(1), Attempts = 2, FirstRetryDelay = TimeSpan.FromMilliseconds(5) };

        // When the file is downloaded (with its checksum, so resuming is safe without a validator)
        Download(Server.BaseUri, settings, FakeHub.Sha256(Body));

        // Then the stalled attempt was abandoned, named as such, and the next one resumed where it stopped
        Assert.That(_log, Has.Some.Contains("sent no more data within download.timeout_seconds = 1 s"));
        Assert.That(Server.Requests, Has.Some.Contains($"Range=bytes={Body.Length / 3}-"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(Body));
    }

    [Test]
    [Platform("Linux")] // a full accept queue drops SYNs on Linux; other systems refuse the connection instead
    public void Download_Should_FailNamingTheConnectSetting_When_NoConnectionCanBeOpened()
    {
        // Given a port where a connection neither completes nor is refused
        using var hole = new FullAcceptQueue();
        var settings = new DownloadSettings
        {
            ConnectTimeout = TimeSpan.FromSeconds(1), StallTimeout = TimeSpan.FromSeconds(600), Attempts = 1, FirstRetryDelay = TimeSpan.FromMilliseconds(5),
        };

        // When a file is downloaded from it
        var error = Assert.Throws<StageFailedException>(() => Download(hole.BaseUri, settings))!;

        // Then the connect timeout ended it (not the stall timeout of 10 minutes), naming the host, the URL and the setting
        Assert.That(error.Message, Does.Contain($"could not connect to {hole.BaseUri.GetLeftPart(UriPartial.Authority)}")
            .And.Contain(new Uri(hole.BaseUri, "data.bin").ToString())
            .And.Contain("download.connect_timeout_seconds = 1 s"));
    }
}
