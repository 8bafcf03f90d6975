using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Downloads;

/// <summary>A resumed download never splices bytes from the wrong place onto what it already has.</summary>
public sealed class ResumeSafetyTests
{
    [Test]
    public void Download_Should_StartOver_When_TheServerResumesFromAnotherByte()
    {
        // Given a partial file of 100 bytes and a server that answers every Range request from byte 0
        using var temp = new TempFolder();
        using var server = new TestHttpServer();
        byte[] body = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 100).Select(i => $"line {i}\n")));
        server.Serve("/data.bin", new TestHttpServer.Route { Body = body, ResumeFromZero = true });
        string destination = temp.File("data.bin");
        File.WriteAllBytes(destination + ".part", body[..100]);
        var log = new List<string>();
        using var http = new HttpClient();
        var downloader = new HttpDownloader(http) { Settings = new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5) }, Log = log.Add };

        // When the download resumes
        downloader.DownloadAsync(new DownloadRequest(new Uri(server.BaseUri, "data.bin"), destination, FakeHub.Sha256(body), body.Length, "data.bin"),
            NullProgress.Instance, CancellationToken.None).GetAwaiter().GetResult();

        // Then the mismatch is seen, the partial file discarded, and the result is the file itself (not 100 bytes + the whole file)
        Assert.That(log, Has.Some.Contains("resumed at byte 0, not at 100"));
        Assert.That(File.ReadAllBytes(destination), Is.EqualTo(body));
    }
}
