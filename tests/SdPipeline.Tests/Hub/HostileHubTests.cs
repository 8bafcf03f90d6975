using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Downloads;
using SdPipeline.Hub;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Hub;

/// <summary>
/// A Hub (or a mirror behind HF_ENDPOINT, or a cache another tool wrote) that answers with names meant to
/// escape the cache: every one is refused by name, and nothing is written outside the cache.
/// </summary>
public sealed class HostileHubTests : ServerTest
{
    private FakeHub _hub = null!;

    [SetUp]
    public void SetUp()
    {
        _hub = new FakeHub(Server, "org/sd");
    }

    private HubSnapshot Download(bool offline = false, string revision = "main")
    {
        var settings = new HubSettings(Server.BaseUri, null, offline, Temp.File("cache/hub"));
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
        var client = new HubClient(http, settings);
        var downloader = new HttpDownloader(http, client.Authorize) { PartSuffix = ".incomplete", Settings = new DownloadSettings { FirstRetryDelay = TimeSpan.FromMilliseconds(5) } };
        return new HubSnapshotDownloader(client, new HubCache(settings.HubCache), downloader, _ => { })
            .DownloadAsync(new HubModelRef("org/sd", revision), null, NullProgress.Instance, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>The tree listing with one entry changed by <paramref name="edit"/>.</summary>
    private void ServeTree(string path, Action<JObject> edit)
    {
        var tree = new JArray(_hub.Files.Select(f => new JObject
        {
            ["type"] = "file", ["path"] = f.Key, ["size"] = f.Value.Length, ["oid"] = FakeHub.GitOid(f.Value),
            ["lfs"] = f.Key.EndsWith(".safetensors") ? new JObject { ["oid"] = FakeHub.Sha256(f.Value), ["size"] = f.Value.Length } : null,
        }));
        foreach (var entry in tree.Cast<JObject>())
        {
            if (entry["lfs"]!.Type == JTokenType.Null) entry.Remove("lfs");
            if (entry.Value<string>("path") == path) edit(entry);
        }
        Server.ServeJson($"/api/models/org/sd/tree/{FakeHub.Commit}", tree.ToString());
    }

    private void AssertNothingEscaped()
    {
        var outside = Directory.EnumerateFileSystemEntries(Temp.Path, "*", SearchOption.AllDirectories)
            .Where(p => !p.StartsWith(Temp.File("cache/hub"), StringComparison.Ordinal) && p != Temp.File("cache"));
        Assert.That(outside, Is.Empty, "written outside the Hub cache");
    }

    [Test]
    public void Download_Should_RefuseNamingTheUrlAndHfEndpoint_When_TheAnswerIsNotJson()
    {
        // A proxy or a network's login page answering 200 with HTML in the Hub's place
        Server.Serve("/api/models/org/sd/revision/main", "<html>Please log in</html>"u8.ToArray(), "text/html");

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain("model org/sd@main").And.Contain("/api/models/org/sd/revision/main").And.Contain("did not answer with the Hub's JSON")
            .And.Contain("HF_ENDPOINT"));
        Assert.That(HubClient.IsRefusedAnswer(error), "bad data from the server, exit 1");
        AssertNothingEscaped();
    }

    [Test]
    public void Download_Should_Refuse_When_TheTreeListingIsNotAJsonArray()
    {
        Server.ServeJson($"/api/models/org/sd/tree/{FakeHub.Commit}", new JObject { ["error"] = "maintenance" }.ToString());

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain($"model org/sd@{FakeHub.Commit}").And.Contain("expected a JSON array"));
    }

    [TestCase("../../../../escape")]
    [TestCase("1234567890abcdef1234567890abcdef1234567")]
    [TestCase("/tmp/escape")]
    public void Download_Should_Refuse_When_TheCommitIsNotACommitId(string sha)
    {
        Server.ServeJson("/api/models/org/sd/revision/main", new JObject { ["sha"] = sha }.ToString());

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain("model org/sd@main").And.Contain("not a 40-hex-digit commit id"));
        AssertNothingEscaped();
    }

    [TestCase("../../../../escape.json", "'..'")]
    [TestCase("/etc/escape.json", "absolute")]
    [TestCase("unet//config.json", "empty")]
    [TestCase("unet\\..\\..\\config.json", "backslash")]
    public void Download_Should_Refuse_When_AFilePathLeavesTheRepository(string path, string problem)
    {
        ServeTree("unet/config.json", entry => entry["path"] = path);

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain(path).And.Contain("not a path inside the repository").And.Contain(problem));
        AssertNothingEscaped();
    }

    [Test]
    public void Download_Should_Refuse_When_AnLfsOidIsNotASha256()
    {
        ServeTree("unet/diffusion_pytorch_model.safetensors", entry => entry["lfs"]!["oid"] = "../../../../../escape");

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain("unet/diffusion_pytorch_model.safetensors").And.Contain("not a SHA-256"));
        AssertNothingEscaped();
    }

    [Test]
    public void Download_Should_Refuse_When_ASmallFilesOidIsNotAGitBlobId()
    {
        ServeTree("unet/config.json", entry => entry["oid"] = "../../../../../escape");

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain("unet/config.json").And.Contain("not a 40-hex-digit blob id"));
        AssertNothingEscaped();
    }

    [Test]
    public void Offline_Should_IgnoreARefThatIsNotACommit()
    {
        // Given a cache whose refs/main another tool filled with a path
        string refs = Temp.File("cache/hub/models--org--sd/refs");
        Directory.CreateDirectory(refs);
        File.WriteAllText(Path.Combine(refs, "main"), "../../../../elsewhere");

        var error = Assert.Throws<StageFailedException>(() => Download(offline: true))!;

        Assert.That(error.Message, Does.Contain("not in the Hub cache"));
    }

    [TestCase("hf:org/sd@../../../x")]
    [TestCase("hf:../sd")]
    [TestCase("hf:org/sd@/abs")]
    public void ModelBase_Should_BeAConfigError_When_ItCouldNameAPathOutsideTheCache(string text)
    {
        var error = Assert.Throws<ConfigException>(() => HubModelRef.TryParse(text))!;

        Assert.That(error.Message, Does.Contain(text));
    }

    [TestCase("../../outside.safetensors")]
    [TestCase("/etc/outside.safetensors")]
    [TestCase("sub/shard.safetensors")]
    [TestCase("shard.bin")]
    public void WeightMap_Should_Refuse_When_AShardIsNotAFileBesideTheIndex(string shard)
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("unet"));
        File.WriteAllText(temp.File("model_index.json"), "{}");
        File.WriteAllText(temp.File("unet/diffusion_pytorch_model.safetensors.index.json"),
            new JObject { ["weight_map"] = new JObject { ["conv_in.weight"] = shard } }.ToString());
        var folder = DiffusersFolder.Open(temp.Path);

        var error = Assert.Throws<WeightsException>(() => folder.WeightFiles("unet"))!;

        Assert.That(error.Message, Does.Contain("index.json").And.Contain("'conv_in.weight'").And.Contain(shard));
    }

    [Test]
    public void RunModel_Should_Exit1NamingTheEntry_When_TheHubListsAPathOutsideTheRepository()
    {
        ServeTree("unet/config.json", entry => entry["path"] = "../../../../../../escape.json");
        var environment = new Dictionary<string, string> { ["HF_ENDPOINT"] = Server.BaseUri.ToString(), ["HF_HUB_CACHE"] = Temp.File("cache/hub") };

        var result = CliRunner.Sdpipe(RepoPaths.Root, environment, "run", "model", "--set", "model.base=hf:org/sd", "--artifacts", Temp.File("cache/artifacts"));

        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Error, Does.Contain("../../../../../../escape.json").And.Contain("not a path inside the repository"));
        Assert.That(result.Error, Does.Not.Contain("   at "));
        Assert.That(File.Exists(Path.Combine(Path.GetTempPath(), "escape.json")), Is.False);
    }
}
