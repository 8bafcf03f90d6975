using SdPipeline.Hub;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Hub;

/// <summary>A gated, private or missing repository: the error says what to do (accept the conditions on the model page, set a token).</summary>
public sealed class HubAccessTests : ServerTest
{
    private const string Unet = "unet/diffusion_pytorch_model.safetensors";
    private const string Gated = "Access to model org/sd is restricted and you are not in the authorized list. Visit https://huggingface.co/org/sd to ask for access.";

    [SetUp]
    public void SetUp()
    {
        new FakeHub(Server, "org/sd");
    }

    private string Page => new Uri(Server.BaseUri, "org/sd").ToString();

    private StageFailedException DownloadFails(string? token, string repo = "org/sd") =>
        Assert.Throws<StageFailedException>(() => HubDownloads.Model(Server, Temp.File("hub"), token: token, repo: repo))!;

    private void RefuseUnet(int status, string message) =>
        Server.Serve($"/org/sd/resolve/{FakeHub.Commit}/{Unet}", new TestHttpServer.Route
        {
            Body = [], Status = status, Headers = new() { ["X-Error-Code"] = "GatedRepo", ["X-Error-Message"] = message },
        });

    [Test]
    public void GatedFile_Should_SayToAcceptTheConditionsOnTheModelPage_When_TheTokenHasNoAccess()
    {
        // Given a gated repository whose conditions the token's owner has not accepted (the Hub lists it, and refuses its files with 403)
        RefuseUnet(403, Gated);

        var error = DownloadFails("hf_token");

        // Then the message quotes the Hub and names the page where the conditions are accepted, instead of asking for the token it was sent
        Assert.That(error.Message, Does.Contain(Gated).And.Contain($"accept its conditions at {Page}").And.Contain("token sent"));
    }

    [Test]
    public void GatedFile_Should_SayToSetAToken_When_NoneWasSent()
    {
        RefuseUnet(401, "Access to model org/sd is restricted. You must have access to it and be authenticated to access it. Please log in.");

        var error = DownloadFails(null);

        Assert.That(error.Message, Does.Contain("No token was sent").And.Contain("HF_TOKEN").And.Contain("hf auth login").And.Contain(Page));
    }

    [Test]
    public void MissingRepository_Should_SayToCheckTheName_When_TheHubAnswers401WithoutAToken()
    {
        // The Hub answers 401, not 404, to a request without a token for a repository that does not exist (a typo)
        Server.Serve("/api/models/org/sdd/revision/main", new TestHttpServer.Route { Body = [], Status = 401, Headers = new() { ["X-Error-Code"] = "RepoNotFound" } });

        var error = DownloadFails(null, "org/sdd");

        Assert.That(error.Message, Does.Contain($"check the name ({new Uri(Server.BaseUri, "org/sdd")})").And.Contain("HF_TOKEN"));
    }

    [Test]
    public void RefusalByTheStorageHost_Should_NameThatHost_And_NotBlameTheToken()
    {
        // Given the Hub redirects the file to another host (its CDN), which refuses the signed link
        using var cdn = new TestHttpServer();
        Server.Serve($"/org/sd/resolve/{FakeHub.Commit}/{Unet}", new TestHttpServer.Route { Body = [], Status = 302, Headers = new() { ["Location"] = new Uri(cdn.BaseUri, "blob").ToString() } });
        cdn.Serve("/blob", new TestHttpServer.Route { Body = [], Status = 403 });

        var error = DownloadFails("hf_token");

        Assert.That(cdn.Requests, Has.None.Contains("Authorization"), "the token stays on the Hub's host");
        Assert.That(error.Message, Does.Contain($"refused (403 by {cdn.BaseUri.Authority})").And.Not.Contain("HF_TOKEN"));
    }
}
