using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Data;

/// <summary>The download stage against an HTTP server on 127.0.0.1 (no network in CI).</summary>
[NonParallelizable] // sets HF_* environment variables
public sealed class DownloadStageTests : ServerTest
{
    private List<string> _log = null!;

    [SetUp]
    public void SetUp()
    {
        _log = [];
        Environment.SetEnvironmentVariable("SDPIPE_RETRY_DELAY_MS", "10");
    }

    [TearDown]
    public void TearDown()
    {
        foreach (string name in new[] { "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "SDPIPE_RETRY_DELAY_MS" })
            Environment.SetEnvironmentVariable(name, null);
    }

    private static readonly (string, byte[], string?)[] ThreeImages =
    [
        ("a.png", DatasetFiles.Png(64, 48, 10), "a red thing"),
        ("b.png", DatasetFiles.Png(48, 64, 120), "a green thing"),
        ("sub/c.png", DatasetFiles.Png(80, 80, 200), ""),
    ];

    private EffectiveConfig Config(JObject entry, params string[] sets)
    {
        string registry = Temp.File("datasets.json");
        File.WriteAllText(registry, new JObject { ["datasets"] = new JObject { ["test"] = entry } }.ToString());
        return ConfigLoader.Load(null, ["download.dataset=test", $"download.registry={registry}", .. sets]);
    }

    private BuildOutcome Run(EffectiveConfig config)
    {
        var store = new ArtifactStore(Temp.File("artifacts"));
        var executor = new StageExecutor(ProjectStages.Graph, store, new FileHashCache(null));
        return executor.Run("download", config, false, line => _log.Add(line), NullProgress.Instance, CancellationToken.None);
    }

    private static List<DatasetItem> Items(BuildOutcome outcome) =>
        File.ReadLines(Path.Combine(outcome.Directory, DatasetWriter.ItemsFile)).Select(JsonConvert.DeserializeObject<DatasetItem>).Select(i => i!).ToList();

    [Test]
    public void Download_Should_ResumeWithRange_When_ServerDropsTheConnectionMidFile()
    {
        // Given a zip that the server cuts off after a third of its bytes, once
        byte[] zip = DatasetFiles.ImageFolderZip(ThreeImages);
        Server.Serve("/data.zip", zip).DropAfterBytes = zip.Length / 3;
        var config = Config(new JObject { ["source"] = new Uri(Server.BaseUri, "data.zip").ToString(), ["sha256"] = DatasetFiles.Sha256(zip) });

        // When the stage runs
        var outcome = Run(config);

        // Then the second request resumed from where the first stopped, and every item arrived intact
        Assert.That(Server.Requests, Has.Some.Contains($"Range=bytes={zip.Length / 3}-"));
        Assert.That(_log, Has.Some.Contains("attempt 1 failed"));
        var items = Items(outcome);
        Assert.That(items.Select(i => i.Caption), Is.EquivalentTo(new[] { "a red thing", "a green thing", "" }));
        Assert.That(items.All(i => DatasetFiles.Sha256(File.ReadAllBytes(Path.Combine(outcome.Directory, i.File))) == i.Sha256), Is.True);
    }

    [Test]
    public void ChecksumMismatch_Should_FailClearly_And_LeaveNoArtifactMarkedDone()
    {
        byte[] zip = DatasetFiles.ImageFolderZip(ThreeImages);
        Server.Serve("/data.zip", zip);
        string wrong = new('0', 64);
        var config = Config(new JObject { ["source"] = new Uri(Server.BaseUri, "data.zip").ToString(), ["sha256"] = wrong });

        var error = Assert.Throws<StageFailedException>(() => Run(config))!;

        Assert.That(error.Message, Does.Contain("checksum mismatch").And.Contain(wrong).And.Contain(DatasetFiles.Sha256(zip)).And.Contain("data.zip"));
        var store = new ArtifactStore(Temp.File("artifacts"));
        var plan = new Planner(ProjectStages.Graph, store, new FileHashCache(null)).Plan(config).Single(p => p.Stage.Name == "download");
        Assert.That(plan.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(Directory.Exists(plan.ArtifactDirectory), Is.False);
        // The download's lock file stays (deleting a lock file races with another process opening it); it holds nothing.
        Assert.That(Directory.EnumerateFiles(store.SharedDirectory("downloads"), "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".lock", StringComparison.Ordinal)), Is.Empty,
            "neither the bad file nor its partial download may be kept as if complete");
    }

    [Test]
    public void NotFound_Should_NameTheDatasetAndTheUrl()
    {
        var url = new Uri(Server.BaseUri, "missing.zip").ToString();
        var config = Config(new JObject { ["source"] = url });

        var error = Assert.Throws<StageFailedException>(() => Run(config))!;

        Assert.That(error.Message, Does.Contain("test").And.Contain(url).And.Contain("404"));
    }

    [Test]
    public void CorruptImage_Should_BeSkippedAndListed_When_OthersAreFine()
    {
        byte[] zip = DatasetFiles.ImageFolderZip([.. ThreeImages, ("broken.png", [0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 4, 5], "broken")]);
        Server.Serve("/data.zip", zip);
        var config = Config(new JObject { ["source"] = new Uri(Server.BaseUri, "data.zip").ToString() });

        var outcome = Run(config);

        Assert.That(Items(outcome), Has.Count.EqualTo(3));
        var skipped = File.ReadLines(Path.Combine(outcome.Directory, DatasetWriter.SkippedFile)).Select(JsonConvert.DeserializeObject<SkippedItem>).ToList();
        Assert.That(skipped.Single()!.Source, Does.EndWith("broken.png"));
        Assert.That(skipped.Single()!.Reason, Does.StartWith("undecodable image"));
        Assert.That(outcome.Manifest.Summary["skipped"]!["undecodable image"]!.Value<int>(), Is.EqualTo(1));
    }

    [Test]
    public void TooSmallAndUncaptionedImages_Should_BeSkippedWithReasons()
    {
        byte[] zip = DatasetFiles.ImageFolderZip([.. ThreeImages, ("tiny.png", DatasetFiles.Png(8, 8, 3), "tiny")],
            extra: [("nocaption.png", DatasetFiles.Png(64, 64, 4))]);
        Server.Serve("/data.zip", zip);
        var config = Config(new JObject { ["source"] = new Uri(Server.BaseUri, "data.zip").ToString() });

        var outcome = Run(config);

        var reasons = File.ReadLines(Path.Combine(outcome.Directory, DatasetWriter.SkippedFile)).Select(l => JObject.Parse(l)["reason"]!.ToString()).ToList();
        Assert.That(reasons, Has.Some.StartsWith("below minimum size"));
        Assert.That(reasons, Has.Some.EqualTo("missing caption"));
    }

    // Each failed mid-download with an exception and a stack trace: UriFormatException, NotSupportedException ('file' scheme), ArgumentNullException
    [TestCase("data/x.zip")]
    [TestCase("file:///etc/hostname")]
    [TestCase("ftp://example.com/x.zip")]
    [TestCase(null)]
    public void HttpEntry_Should_NameTheRegistryAndTheUrl_When_AUrlIsNotHttp(string? url)
    {
        var config = Config(new JObject { ["source"] = "http", ["urls"] = new JArray(new JObject { ["url"] = url }) });

        var error = Assert.Throws<StageInputException>(() => Run(config))!;

        Assert.That(error.Message, Does.Contain(Temp.File("datasets.json")).And.Contain("dataset 'test': urls[0].url").And.Contain("is not an http:// or https:// URL"));
        Assert.That(Server.Requests, Is.Empty);
    }

    [Test]
    public void ZipEntryEscapingTheFolder_Should_BeRejected()
    {
        byte[] zip = DatasetFiles.ImageFolderZip(ThreeImages, extra: [("../x", [1, 2, 3])]);
        Server.Serve("/evil.zip", zip);
        var config = Config(new JObject { ["source"] = new Uri(Server.BaseUri, "evil.zip").ToString() });

        var error = Assert.Throws<StageFailedException>(() => Run(config))!;

        Assert.That(error.Message, Does.Contain("'../x'").And.Contain("outside"));
        Assert.That(File.Exists(Path.Combine(Temp.Path, "artifacts", "download", "x")), Is.False);
    }

    [Test]
    public void TarGzImageFolder_Should_Load()
    {
        byte[] tar = DatasetFiles.ImageFolderTarGz([("one.png", DatasetFiles.Png(64, 64, 1), "one"), ("two.png", DatasetFiles.Png(64, 64, 2), "two")]);
        Server.Serve("/data.tar.gz", tar);
        var config = Config(new JObject { ["source"] = new Uri(Server.BaseUri, "data.tar.gz").ToString() });

        var outcome = Run(config);

        Assert.That(Items(outcome).Select(i => i.Caption), Is.EquivalentTo(new[] { "one", "two" }));
    }

    /// <summary>A fake Hub (HF_ENDPOINT) whose dataset org/pics, on branch main, holds a README and <paramref name="parquet"/> in LFS; returns main's commit.</summary>
    private string ServeHubParquetDataset(byte[] parquet)
    {
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        Server.ServeJson("/api/datasets/org/pics/revision/main", $$"""{"sha": "{{commit}}"}""");
        Server.ServeJson($"/api/datasets/org/pics/tree/{commit}",
            $$$"""[{"type":"file","path":"README.md","size":5,"oid":"aa"},{"type":"file","path":"data/train-0.parquet","size":{{{parquet.Length}}},"oid":"bb","lfs":{"oid":"{{{DatasetFiles.Sha256(parquet)}}}","size":{{{parquet.Length}}}}}]""");
        Server.Serve($"/datasets/org/pics/resolve/{commit}/data/train-0.parquet", parquet);
        Environment.SetEnvironmentVariable("HF_ENDPOINT", Server.BaseUri.ToString().TrimEnd('/'));
        return commit;
    }

    [Test]
    public void HubParquetDataset_Should_LoadWithCustomCaptionColumn_And_SendTheTokenOnlyToTheHub()
    {
        // Given a fake Hub (HF_ENDPOINT) serving a parquet file whose captions are in "caption_custom"
        byte[] parquet = DatasetFiles.Parquet([(DatasetFiles.Png(64, 64, 30), "first"), (DatasetFiles.Png(64, 64, 60), "second")], "caption_custom");
        string commit = ServeHubParquetDataset(parquet);
        Environment.SetEnvironmentVariable("HF_TOKEN", "hf_secret_token_value");
        var config = Config(new JObject
        {
            ["source"] = "hf:org/pics", ["revision"] = "main", ["include"] = new JArray("data/*.parquet"), ["caption_column"] = "caption_custom",
        });

        // When the stage runs
        var outcome = Run(config);

        // Then the captions come from the custom column, the commit is recorded, and the token went to the Hub only
        Assert.That(Items(outcome).Select(i => i.Caption), Is.EqualTo(new[] { "first", "second" }));
        Assert.That(outcome.Manifest.Summary["revision"]!.ToString(), Is.EqualTo(commit));
        Assert.That(Server.Requests.Where(r => r.Contains("/resolve/")), Has.All.Contains("Authorization=Bearer hf_secret_token_value"));
        Assert.That(_log, Has.None.Contains("hf_secret_token_value"));
        Assert.That(File.ReadAllText(Path.Combine(outcome.Directory, Manifest.FileName)), Does.Not.Contain("hf_secret_token_value"));
    }

    [Test]
    public void HubDataset_Should_NormaliseAgainOffline_When_ASettingChangesAfterAnOnlineRun()
    {
        // Given a Hub dataset on branch main, downloaded once with the network
        byte[] parquet = DatasetFiles.Parquet([(DatasetFiles.Png(64, 64, 30), "first"), (DatasetFiles.Png(64, 64, 60), "second")], "text");
        string commit = ServeHubParquetDataset(parquet);
        var entry = new JObject { ["source"] = "hf:org/pics", ["revision"] = "main", ["include"] = new JArray("data/*.parquet") };
        var first = Run(Config(entry));
        int requests = Server.Requests.Count;

        // When a download setting changes and the stage runs again with HF_HUB_OFFLINE (an air-gapped runner)
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        var second = Run(Config(entry, "download.min_side=48"));

        // Then it rebuilds from the cached files, at the commit main resolved to, without asking the Hub
        Assert.That(second.Directory, Is.Not.EqualTo(first.Directory));
        Assert.That(Items(second).Select(i => i.Caption), Is.EquivalentTo(new[] { "first", "second" }));
        Assert.That(second.Manifest.Summary["revision"]!.ToString(), Is.EqualTo(commit));
        Assert.That(Server.Requests, Has.Count.EqualTo(requests));
    }

    [Test]
    public void HubDataset_Should_FailSayingToDownloadOnce_When_OfflineAndNeverDownloaded()
    {
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        var config = Config(new JObject { ["source"] = "hf:org/pics", ["revision"] = "main" });

        var error = Assert.Throws<StageFailedException>(() => Run(config))!;

        Assert.That(error.Message, Does.Contain("HF_HUB_OFFLINE").And.Contain("org/pics@main").And.Contain("download it once with network access"));
        Assert.That(Server.Requests, Is.Empty);
    }

    /// <summary>A fake Hub dataset whose parquet file is kept in git, not LFS: the listing gives only its git blob id, <paramref name="oid"/>.</summary>
    private EffectiveConfig HubDatasetOutsideLfs(byte[] parquet, string oid)
    {
        const string commit = "0123456789abcdef0123456789abcdef01234567";
        Server.ServeJson("/api/datasets/org/pics/revision/main", $$"""{"sha": "{{commit}}"}""");
        Server.ServeJson($"/api/datasets/org/pics/tree/{commit}", $$"""[{"type":"file","path":"data/train-0.parquet","size":{{parquet.Length}},"oid":"{{oid}}"}]""");
        Server.Serve($"/datasets/org/pics/resolve/{commit}/data/train-0.parquet", parquet);
        Environment.SetEnvironmentVariable("HF_ENDPOINT", Server.BaseUri.ToString().TrimEnd('/'));
        return Config(new JObject { ["source"] = "hf:org/pics", ["revision"] = "main", ["caption_column"] = "text" });
    }

    [Test]
    public void HubDatasetFileOutsideLfs_Should_Load_When_ItMatchesItsGitBlobId()
    {
        byte[] parquet = DatasetFiles.Parquet([(DatasetFiles.Png(64, 64, 30), "first")], "text");
        var outcome = Run(HubDatasetOutsideLfs(parquet, FakeHub.GitOid(parquet)));
        Assert.That(Items(outcome).Select(i => i.Caption), Is.EqualTo(new[] { "first" }));
    }

    [Test]
    public void HubDatasetFileOutsideLfs_Should_FailNamingTheFile_When_ItDoesNotMatchItsGitBlobId()
    {
        // Given a Hub dataset file kept in git whose served bytes are not the blob the listing names
        byte[] parquet = DatasetFiles.Parquet([(DatasetFiles.Png(64, 64, 30), "first")], "text");
        byte[] listed = DatasetFiles.Parquet([(DatasetFiles.Png(64, 64, 31), "other")], "text");
        var config = HubDatasetOutsideLfs(parquet, FakeHub.GitOid(listed));

        // When the stage runs
        var error = Assert.Throws<StageFailedException>(() => Run(config))!;

        // Then it fails naming the file and both blob ids, and keeps nothing of it
        Assert.That(error.Message, Does.Contain("data/train-0.parquet").And.Contain($"expected git blob id {FakeHub.GitOid(listed)}, got {FakeHub.GitOid(parquet)}"));
        var downloads = new ArtifactStore(Temp.File("artifacts")).SharedDirectory("downloads");
        Assert.That(Directory.EnumerateFiles(downloads, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".lock", StringComparison.Ordinal)), Is.Empty);
    }

    [Test]
    public void HubDatasetFileOutsideLfs_Should_BeRefused_When_ItsOidIsNotAGitBlobId()
    {
        byte[] parquet = DatasetFiles.Parquet([(DatasetFiles.Png(64, 64, 30), "first")], "text");
        var error = Assert.Throws<StageFailedException>(() => Run(HubDatasetOutsideLfs(parquet, "bb")))!;
        Assert.That(error.Message, Does.Contain("data/train-0.parquet").And.Contain("'bb', which is not a 40-hex-digit blob id"));
        Assert.That(Server.Requests, Has.None.Contains("/resolve/"));
    }

    [Test]
    public void RunDownload_Should_Exit1NamingTheUrlAndTheSetting_When_TheServerNeverAnswers()
    {
        // Given a dataset URL on a server that accepts connections and never answers
        Server.Serve("/data.zip", new TestHttpServer.Route { Body = [], NeverAnswer = true });
        string url = new Uri(Server.BaseUri, "data.zip").ToString();

        // When `sdpipe run download` fetches it with a 1-second stall timeout and 2 attempts
        var result = CliRunner.Sdpipe(RepoPaths.Root, null, "run", "download", "--set", $"download.source={url}",
            "--set", "download.timeout_seconds=1", "--set", "download.retries=2", "--artifacts", Temp.File("artifacts"));

        // Then it ends with exit 1 and one line naming the URL and the setting, not a hang or a stack trace
        Assert.That(result.ExitCode, Is.EqualTo(1), result.All);
        Assert.That(result.Error, Does.Contain(url).And.Contain("download.timeout_seconds = 1 s"));
        Assert.That(result.All, Does.Not.Contain("   at "));
    }

    [Test]
    public void LocalFolder_Should_BeStale_When_AnImageChanges()
    {
        string folder = Path.Combine(Temp.Path, "local");
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "a.png"), DatasetFiles.Png(64, 64, 1));
        File.WriteAllText(Path.Combine(folder, "metadata.jsonl"), "{\"file_name\": \"a.png\", \"text\": \"a\"}\n");
        var config = Config(new JObject { ["source"] = folder });
        Run(config);

        File.WriteAllBytes(Path.Combine(folder, "a.png"), DatasetFiles.Png(64, 64, 2));
        var plan = new Planner(ProjectStages.Graph, new ArtifactStore(Temp.File("artifacts")), new FileHashCache(null)).Plan(config).Single(p => p.Stage.Name == "download");

        Assert.That(plan.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(plan.Reasons, Has.Some.Contains("changed content"));
    }

    [Test]
    public void Shapes_Should_BeDeterministic_And_CountShouldExtendTheSet()
    {
        var small = ShapesGenerator.Generate(new ShapesOptions(Seed: 7, HeldoutCount: 2), 4).ToList();
        var large = ShapesGenerator.Generate(new ShapesOptions(Seed: 7, HeldoutCount: 2), 6).ToList();

        Assert.That(small.Take(4).Select(c => c.ReadImage!()), Is.EqualTo(large.Take(4).Select(c => c.ReadImage!())));
        Assert.That(small.Take(4).Select(c => c.Caption), Is.EqualTo(large.Take(4).Select(c => c.Caption)));
        Assert.That(small.Count(c => c.Split == DatasetItem.HeldoutSplit), Is.EqualTo(2));
        Assert.That(small[0].Caption, Does.Match("^an? (red|green|blue|yellow|purple|orange|white|black) (circle|square|triangle) on an? [a-z]+ background$"));
    }

    [Test]
    public void ShapesOptionsLeftOut_Should_KeepTheirDefaults_And_OutOfRangeOnesBeNamed()
    {
        // Given an entry that sets only the count: the held-out split and the image size keep their documented defaults (64 each)
        var outcome = Run(Config(new JObject { ["source"] = "synthetic:shapes", ["options"] = new JObject { ["count"] = 4 } }));
        var items = Items(outcome);
        Assert.That(items.Count(i => i.Split == DatasetItem.HeldoutSplit), Is.EqualTo(64));
        Assert.That(items.Select(i => (i.Width, i.Height)).Distinct(), Is.EqualTo(new[] { (64, 64) }));

        // and a size no image can have is refused naming the option
        var error = Assert.Throws<StageInputException>(() => Run(Config(new JObject { ["source"] = "synthetic:shapes", ["options"] = new JObject { ["count"] = 4, ["image_size"] = 0 } }, "download.count=2")))!;
        Assert.That(error.Message, Does.Contain("'test'").And.Contain("image_size 0"));
    }

    [Test]
    public void UnknownDataset_Should_NameTheClosest()
    {
        var config = Config(new JObject { ["source"] = "synthetic:shapes" }, "download.dataset=tset");

        var error = Assert.Throws<StageInputException>(() => Run(config))!;

        Assert.That(error.Message, Does.Contain("'tset'").And.Contain("did you mean 'test'"));
    }
}
