using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Downloads;

/// <summary>A resumed download never splices bytes from the wrong place, or from another version of the file, onto what it already has.</summary>
public sealed class ResumeSafetyTests : ServerTest
{
    private List<string> _log = null!;

    [SetUp]
    public void SetUp()
    {
        _log = [];
    }

    private static byte[] Text(string version) => Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 100).Select(i => $"{version} line {i}\n")));

    private void Download(string? sha256, long? size)
    {
        using var http = new HttpClient();
        var downloader = new HttpDownloader(http) { Settings = new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5) }, Log = _log.Add };
        downloader.DownloadAsync(new DownloadRequest(new Uri(Server.BaseUri, "data.bin"), Temp.File("data.bin"), sha256, size, "data.bin"),
            NullProgress.Instance, CancellationToken.None).GetAwaiter().GetResult();
    }

    [Test]
    public void Download_Should_StartOver_When_TheServerResumesFromAnotherByte()
    {
        // Given a partial file of 100 bytes and a server that answers every Range request from byte 0
        byte[] body = Text("v1");
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = body, ResumeFromZero = true });
        File.WriteAllBytes(Temp.File("data.bin") + ".part", body[..100]);

        // When the download resumes
        Download(FakeHub.Sha256(body), body.Length);

        // Then the mismatch is seen, the partial file discarded, and the result is the file itself (not 100 bytes + the whole file)
        Assert.That(_log, Has.Some.Contains("resumed at byte 0, not at 100"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(body));
    }

    [Test]
    public void Download_Should_SendIfRange_And_StartOver_When_TheFileChangedBetweenAttempts()
    {
        // Given a file without a checksum whose first download drops after a third, and which the server then replaces
        byte[] before = Text("old"), after = Text("new");
        var route = new TestHttpServer.Route { Body = before, ETag = "\"v1\"", DropAfterBytes = before.Length / 3 };
        route.Served = () => { route.Body = after; route.ETag = "\"v2\""; };
        Server.Serve("/data.bin", route);

        // When it is downloaded
        Download(null, null);

        // Then the resume asked for the rest of version v1 only, the server sent all of v2 instead, and the result is v2 alone
        Assert.That(Server.Requests[1], Does.Contain($"Range=bytes={before.Length / 3}-").And.Contain("If-Range=\"v1\""));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(after));
    }

    [Test]
    public void Download_Should_ResumeWithIfRangeLastModified_When_TheFileIsUnchanged()
    {
        // Given a server that gives only Last-Modified, and a first attempt that drops after a third
        byte[] body = Text("v1");
        const string modified = "Wed, 02 Dec 2026 10:00:00 GMT";
        Server.Serve("/data.bin", new TestHttpServer.Route { Body = body, LastModified = modified, DropAfterBytes = body.Length / 3 });

        // When it is downloaded (no checksum: the date is what makes the resume safe)
        Download(null, null);

        // Then the second request resumed under that date, and the file is whole
        Assert.That(Server.Requests[1], Does.Contain($"Range=bytes={body.Length / 3}-").And.Contain($"If-Range={modified}"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(body));
    }

    [Test]
    public void Download_Should_StartOver_When_AServerIgnoringIfRangeResumesAnotherVersion()
    {
        // Given a server that honours Range but not If-Range, and replaces the file after the first attempt drops
        byte[] before = Text("old"), after = Text("new");
        var route = new TestHttpServer.Route { Body = before, ETag = "\"v1\"", DropAfterBytes = before.Length / 3, IgnoreIfRange = true };
        route.Served = () => { route.Body = after; route.ETag = "\"v2\""; };
        Server.Serve("/data.bin", route);

        // When it is downloaded
        Download(null, null);

        // Then the 206 of another version is refused by its ETag, and the download starts over with v2 alone
        Assert.That(_log, Has.Some.Contains("the file changed on the server since the partial download began (\"v1\" → \"v2\")"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(after));
    }

    [Test]
    public void Download_Should_StartOver_When_NeitherAValidatorNorAChecksumCanTellVersionsApart()
    {
        // Given a server with no ETag or Last-Modified, a file without a checksum, and a first attempt that drops
        byte[] body = Text("v1");
        Server.Serve("/data.bin", body).DropAfterBytes = body.Length / 3;

        // When it is downloaded
        Download(null, null);

        // Then the second attempt did not resume (nothing could prove the server still has the same file), and the file is whole
        Assert.That(Server.Requests, Has.Count.EqualTo(2));
        Assert.That(Server.Requests[1], Does.Not.Contain("Range="));
        Assert.That(_log, Has.Some.Contains("no ETag or Last-Modified to resume against"));
        Assert.That(File.ReadAllBytes(Temp.File("data.bin")), Is.EqualTo(body));
    }
}
