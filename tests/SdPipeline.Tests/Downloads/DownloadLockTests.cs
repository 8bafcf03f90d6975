using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Downloads;

/// <summary>
/// Two downloads of one file (two stages, two runs sharing <c>_shared/downloads</c>) take turns on a lock beside
/// it instead of both writing one <c>.part</c>: the second waits and reuses the first's result. A lock left by a
/// killed process does not block.
/// </summary>
public sealed class DownloadLockTests : ServerTest
{
    private static readonly byte[] Body = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 500).Select(i => $"row {i:D4}\n")));

    private DownloadRequest Request => new(new Uri(Server.BaseUri, "data.bin"), Temp.File("downloads/data.bin"), FakeHub.Sha256(Body), Body.Length, "data.bin");

    /// <summary>Starts a download on its own thread, with its own client, as another process would.</summary>
    private Task<long> Start(ConcurrentQueue<string> log) => Task.Run(async () =>
    {
        using var http = new HttpClient();
        var downloader = new HttpDownloader(http) { Settings = new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5) }, Log = log.Enqueue };
        return await downloader.DownloadAsync(Request, NullProgress.Instance, CancellationToken.None);
    });

    /// <summary>Waits for a condition the test needs before its next step (a guard against a hang, not a measurement).</summary>
    private static void WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromMinutes(1)) Assert.Fail($"timed out waiting until {what}");
            Thread.Sleep(20);
        }
    }

    [Test]
    public void SecondDownload_Should_WaitAndReuseTheFirst_When_BothFetchTheSameFileAtOnce()
    {
        // Given a server that sends the first 100 bytes of the file and holds the rest until told
        var route = new TestHttpServer.Route { Body = Body, GateAfterBytes = 100 };
        Server.Serve("/data.bin", route);
        var firstLog = new ConcurrentQueue<string>();
        var secondLog = new ConcurrentQueue<string>();

        // When a second download of the same file starts while the first is half way
        var first = Start(firstLog);
        WaitFor(() => Server.Requests.Count == 1, "the first download is under way");
        var second = Start(secondLog);
        WaitFor(() => secondLog.Any(l => l.Contains("another process is downloading this file")), "the second download waits");
        route.Gate.SetResult();
        Assert.That(Task.WaitAll([first, second], TimeSpan.FromMinutes(1)), Is.True, "the downloads did not finish");

        // Then the server was asked once, the second download reused the first's file, and that file is whole
        Assert.That(Server.Requests, Has.Count.EqualTo(1));
        Assert.That((first.Result, second.Result), Is.EqualTo(((long)Body.Length, 0L)));
        Assert.That(File.ReadAllBytes(Request.Destination), Is.EqualTo(Body));
        Assert.That(File.Exists(Request.Destination + ".part"), Is.False);
    }

    [Test]
    [Platform("Linux")] // util-linux flock(1) holds the lock
    public void Download_Should_Proceed_When_TheProcessHoldingItsLockIsKilled()
    {
        // Given another process holding the download's lock (flock(1) keeps it while it waits for its child)
        Server.Serve("/data.bin", Body);
        string lockFile = Request.Destination + ".lock";
        Directory.CreateDirectory(Path.GetDirectoryName(lockFile)!);
        using var holder = Process.Start(new ProcessStartInfo("flock") { ArgumentList = { "--close", lockFile, "sleep", "600" }, UseShellExecute = false })!;
        try
        {
            WaitFor(() => CliRunner.Run("flock", ["--nonblock", lockFile, "true"], Temp.Path, null, TimeSpan.FromSeconds(30)).ExitCode != 0, "the other process holds the lock");
            var log = new ConcurrentQueue<string>();
            var download = Start(log);
            WaitFor(() => log.Any(l => l.Contains("another process is downloading this file")), "the download waits for the lock");
            Assert.That(Server.Requests, Is.Empty, "the download went ahead while another process held the lock");

            // When that process is killed
            holder.Kill(entireProcessTree: true);

            // Then the lock it left behind does not block: the download proceeds and completes
            Assert.That(download.Wait(TimeSpan.FromMinutes(1)), Is.True, "the download stayed blocked by a dead process's lock");
            Assert.That(File.ReadAllBytes(Request.Destination), Is.EqualTo(Body));
        }
        finally
        {
            if (!holder.HasExited) holder.Kill(entireProcessTree: true);
        }
    }
}
