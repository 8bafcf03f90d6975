using System.Net;
using System.Text;
using SdPipeline.Downloads;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Downloads;

/// <summary>Where a dataset URL's server may send the download: another http(s) address, never a local file, never from HTTPS down to HTTP.</summary>
public sealed class RedirectTests : ServerTest
{
    private static readonly byte[] Body = Encoding.ASCII.GetBytes("the dataset");

    private long Download(HttpClient http, Uri url) =>
        new HttpDownloader(http) { Settings = new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5) } }
            .DownloadAsync(new DownloadRequest(url, Temp.File("set.zip"), null, null, "set: set.zip"), NullProgress.Instance, CancellationToken.None)
            .GetAwaiter().GetResult();

    [Test]
    public void Download_Should_RefuseNamingTheUrl_When_ARedirectLeadsToAFileUrl()
    {
        // A server answering with Location: file:///etc/hostname ended in a NotSupportedException and a stack trace
        Server.Serve("/set.zip", new TestHttpServer.Route { Body = [], Status = 302, Headers = { ["Location"] = "file:///etc/hostname" } });
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });

        var error = Assert.Throws<StageFailedException>(() => Download(http, new Uri(Server.BaseUri, "set.zip")))!;

        Assert.That(error.Message, Does.Contain(new Uri(Server.BaseUri, "set.zip").ToString()).And.Contain("redirects to a file: URL"));
        Assert.That(File.Exists(Temp.File("set.zip")), Is.False);
    }

    [Test]
    public void Download_Should_Refuse_When_AnHttpsUrlRedirectsToPlainHttp()
    {
        // The user asked for https; the plain-HTTP copy (here on the test server) is never asked for
        Server.Serve("/set.zip", Body);
        var hops = new Hops { [new Uri("https://data.example/set.zip")] = new Uri(Server.BaseUri, "set.zip") };
        using var http = new HttpClient(hops);

        var error = Assert.Throws<StageFailedException>(() => Download(http, new Uri("https://data.example/set.zip")))!;

        Assert.That(error.Message, Does.Contain("https://data.example/set.zip").And.Contain("from HTTPS to plain HTTP"));
        Assert.That(Server.Requests, Is.Empty);
        Assert.That(File.Exists(Temp.File("set.zip")), Is.False);
    }

    [Test]
    public void Download_Should_FollowARedirect_When_ItStaysOnHttps()
    {
        // As the Hub sends a /resolve/ URL on to its CDN
        var hops = new Hops { [new Uri("https://hub.example/set.zip")] = new Uri("https://cdn.example/set.zip?signature=x") };
        using var http = new HttpClient(hops);

        Download(http, new Uri("https://hub.example/set.zip"));

        Assert.That(File.ReadAllBytes(Temp.File("set.zip")), Is.EqualTo(Body));
        Assert.That(hops.Asked, Is.EqualTo(new[] { "https://hub.example/set.zip", "https://cdn.example/set.zip?signature=x" }));
    }

    /// <summary>HTTPS hosts without a network: each URL it holds redirects to its value; any other https URL serves <see cref="Body"/>; plain HTTP goes to the test server.</summary>
    private sealed class Hops : HttpMessageHandler
    {
        private readonly Dictionary<Uri, Uri> _redirects = [];
        private readonly HttpClient _plain = new(new SocketsHttpHandler { AllowAutoRedirect = false });

        public List<string> Asked { get; } = [];

        public Uri this[Uri from] { set => _redirects[from] = value; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var url = request.RequestUri!;
            if (url.Scheme == "http") return _plain.SendAsync(new HttpRequestMessage(HttpMethod.Get, url), cancellationToken);
            Asked.Add(url.ToString());
            var response = _redirects.TryGetValue(url, out var to)
                ? new HttpResponseMessage(HttpStatusCode.Found) { Headers = { Location = to }, Content = new ByteArrayContent([]) }
                : new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(Body) };
            response.RequestMessage = request;
            return Task.FromResult(response);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _plain.Dispose();
            base.Dispose(disposing);
        }
    }
}
