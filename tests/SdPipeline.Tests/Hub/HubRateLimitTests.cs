using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Hub;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Hub;

/// <summary>The Hub's API rate-limits (429) and has brief outages (503): its calls wait and retry as file downloads do.</summary>
public sealed class HubRateLimitTests : ServerTest
{
    [SetUp]
    public void SetUp()
    {
        new FakeHub(Server, "org/sd");
    }

    private HubSnapshot Download(int attempts = 5) => HubDownloads.Model(Server, Temp.File("hub"), token: null, attempts: attempts);

    private void Limit(string path, string json, int times, int status, string? retryAfter = null) =>
        Server.Serve(path, new TestHttpServer.Route
        {
            Body = Encoding.UTF8.GetBytes(json), ContentType = "application/json", FailFirst = times, FailStatus = status,
            Headers = retryAfter is null ? [] : new() { ["Retry-After"] = retryAfter },
        });

    private const string Revision = $$"""{"sha": "{{FakeHub.Commit}}"}""";

    [Test]
    public void ApiCalls_Should_WaitAndRetry_When_RateLimited()
    {
        // Given a Hub that answers the revision call with 429 twice, asking to retry at once
        Limit("/api/models/org/sd/revision/main", Revision, 2, 429, "0");

        var snapshot = Download();

        Assert.That(snapshot.Commit, Is.EqualTo(FakeHub.Commit));
        Assert.That(Server.Requests.Count(r => r.Contains("/revision/main")), Is.EqualTo(3));
    }

    [Test]
    public void ApiCalls_Should_BackOffAndRetry_When_TheHubIsBrieflyUnavailable()
    {
        Limit("/api/models/org/sd/revision/main", Revision, 1, 503);

        Assert.That(Download().Commit, Is.EqualTo(FakeHub.Commit));
    }

    [Test]
    public void ApiCalls_Should_FailNamingTheLimit_When_EveryAttemptIsRateLimited()
    {
        Limit("/api/models/org/sd/revision/main", Revision, 10, 429, "0");

        var error = Assert.Throws<StageFailedException>(() => Download(attempts: 3))!;

        Assert.That(Server.Requests.Count(r => r.Contains("/revision/main")), Is.EqualTo(3));
        Assert.That(error.Message, Does.Contain("429").And.Contain(DownloadSettings.AttemptsKey).And.Contain("HF_TOKEN"));
    }
}
