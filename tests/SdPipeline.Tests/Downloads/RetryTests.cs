using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Downloads;

/// <summary>Retries follow what the server asks (Retry-After, within a bound), and only attempts that get nowhere count against the limit.</summary>
public sealed class RetryTests : ServerTest
{
    private List<string> _log = null!;

    [SetUp]
    public void SetUp()
    {
        _log = [];
    }

    private static readonly byte[] Body = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 200).Select(i => $"row {i:D4}\n")));

    private void Download(DownloadSettings settings)
    {
        using var http = new HttpClient();
        var downloader = new HttpDownloader(http) { Settings = settings, Log = _log.Add };
        downloader.DownloadAsync(new DownloadRequest(new Uri(Server.BaseUri, "data.bin"), Temp.File("data.bin"), FakeHub.Sha256(Body), Body.Length, "data.bin"),
            NullProgress.Instance, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2)).GetAwaiter().GetResult();
    }

    [TestCase(503)]
    [TestCase(429)]
    public void Download_Should_WaitAsTheServerAsks_When_ItAnswersWithRetryAfter(int status)
    {
        // Given a server that first answers "busy, retry in 1 s"
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = Body, FailFirst = 1, FailStatus = status, Headers = { ["Retry-After"] = "1" } });

        // When the file is downloaded, with a backoff of a few milliseconds
        Download(new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5) });

        // Then the wait before the second attempt is the server's second, not the backoff
        Assert.That(_log, Has.One.Contains($"(HTTP {status}); the server asks to wait 1 s (Retry-After); resuming from byte 0 in 1 s"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(Body));
    }

    [Test]
    public void Download_Should_WaitAtMostTheMaximum_When_RetryAfterAsksForMore()
    {
        // Given a server that asks to be left alone for an hour
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = Body, FailFirst = 1, FailStatus = 503, Headers = { ["Retry-After"] = "3600" } });

        // When the file is downloaded with a maximum wait of 1 s
        Download(new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5), MaxRetryWait = TimeSpan.FromSeconds(1) });

        // Then the log says what was asked, the bound and its setting, and the wait used
        Assert.That(_log, Has.One.Contains("the server asks to wait 3600 s (Retry-After), more than download.max_retry_wait_seconds = 1 s; resuming from byte 0 in 1 s"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(Body));
    }

    [Test]
    public void Download_Should_Finish_When_EveryAttemptDropsButAddsBytes()
    {
        // Given a link that drops every connection after 100 bytes: 20 attempts for a 2000-byte file
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = Body, DropEveryAfterBytes = 100 });

        // When the file is downloaded with a limit of 2 attempts
        Download(new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5), Attempts = 2 });

        // Then attempts that made progress did not count, and the file arrived whole
        Assert.That(Server.Requests, Has.Count.EqualTo(Body.Length / 100));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(Body));
    }

    [Test]
    public void Download_Should_GiveUp_When_AttemptsAddNothing()
    {
        // Given a link that drops every connection before the first body byte
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = Body, DropEveryAfterBytes = 0 });

        // When the file is downloaded with a limit of 3 attempts
        var error = Assert.Throws<StageFailedException>(() => Download(new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5), Attempts = 3 }))!;

        // Then it stopped after 3 attempts without progress, naming the setting
        Assert.That(Server.Requests, Has.Count.EqualTo(3));
        Assert.That(error.Message, Does.Contain("3 attempts, 3 without progress; download.retries = 3"));
    }

    [Test]
    public void Download_Should_StopAtOnce_NamingTheFullDisk_When_ThePartialFileCannotBeWritten()
    {
        // Given a partial file on a full disk (a link to /dev/full, whose writes fail with ENOSPC as a full disk's do)
        Assume.That(OperatingSystem.IsLinux() && File.Exists("/dev/full"), "needs /dev/full");
        Server.Serve("/data.bin", Body);
        File.CreateSymbolicLink(Temp.File("data.bin.part"), "/dev/full");

        // When the file is downloaded with 3 attempts
        var error = Assert.Throws<StageFailedException>(() => Download(new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5), Attempts = 3 }))!;

        // Then it asked the server once, and says the disk is full, where, and that the run can go on once there is room
        Assert.That(Server.Requests, Has.Count.EqualTo(1));
        Assert.That(error.Message, Does.Contain(Temp.File("data.bin.part")).And.Contain("the disk is full").And.Contain("run again"));
        Assert.That(File.Exists(Temp.File("data.bin")), Is.False);
    }
}
