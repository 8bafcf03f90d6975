using System.Text;
using SdPipeline.Hub;
using SdPipeline.Pipeline;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Hub;

/// <summary>Model downloads into the Hugging Face cache layout, against a fake Hub on 127.0.0.1.</summary>
public sealed class HubSnapshotDownloaderTests : ServerTest
{
    private const string Commit = FakeHub.Commit;
    private Dictionary<string, byte[]> _files = null!;

    [SetUp]
    public void SetUp()
    {
        _files = new FakeHub(Server, "org/sd").Files;
    }

    private static string Sha256(byte[] bytes) => FakeHub.Sha256(bytes);

    private HubSnapshot Download(string? variant = null, bool offline = false) =>
        HubDownloads.Model(Server, Temp.File("hub"), offline: offline, variant: variant);

    [Test]
    public void Download_Should_FillTheHubCacheLayout_WithOnlyThePipelineFiles()
    {
        var snapshot = Download();

        string repo = Temp.File("hub/models--org--sd");
        Assert.That(File.ReadAllText(Path.Combine(repo, "refs", "main")), Is.EqualTo(Commit));
        Assert.That(snapshot.Folder, Is.EqualTo(Path.Combine(repo, "snapshots", Commit)));
        string unet = Path.Combine(snapshot.Folder, "unet", "diffusion_pytorch_model.safetensors");
        Assert.That(new FileInfo(unet).LinkTarget, Is.EqualTo($"../../../blobs/{Sha256(_files["unet/diffusion_pytorch_model.safetensors"])}"));
        Assert.That(File.ReadAllBytes(unet), Is.EqualTo(_files["unet/diffusion_pytorch_model.safetensors"]));
        Assert.That(snapshot.ContentHashes.Keys, Does.Not.Contain("safety_checker/model.safetensors").And.Not.Contain("v1-5-pruned-emaonly.ckpt")
            .And.Not.Contain("unet/diffusion_pytorch_model.fp16.safetensors").And.Not.Contain("README.md"));
        Assert.That(snapshot.ContentHashes, Has.Count.EqualTo(12));
        Assert.That(Server.Requests.Where(r => r.Contains("/resolve/")), Has.All.Contains("Authorization=Bearer hf_token"));
    }

    [Test]
    public void Download_Should_ReuseCachedBlobs_When_RunAgain()
    {
        Download();
        int before = Server.Requests.Count(r => r.Contains("/resolve/"));

        Download();

        Assert.That(Server.Requests.Count(r => r.Contains("/resolve/")), Is.EqualTo(before), "no file is fetched twice");
    }

    [Test]
    public void Download_Should_WriteNothingToTheCache_When_ItHoldsTheSnapshot_AsARunnersReadOnlyCacheNeeds()
    {
        // Given a cache that holds the snapshot, every entry dated in the past (a runner's pre-filled cache, mounted
        // read-only: as root a test cannot make a folder read-only, so what is written is seen by the dates and names)
        Download();
        string cache = Temp.File("hub");
        var past = new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        foreach (string entry in Directory.EnumerateFileSystemEntries(cache, "*", SearchOption.AllDirectories).Where(e => new FileInfo(e).LinkTarget is null))
            if (File.Exists(entry)) File.SetLastWriteTimeUtc(entry, past);
            else Directory.SetLastWriteTimeUtc(entry, past);
        Dictionary<string, DateTime> Entries() => Directory.EnumerateFileSystemEntries(cache, "*", SearchOption.AllDirectories)
            .Where(e => new FileInfo(e).LinkTarget is null)
            .ToDictionary(e => Path.GetRelativePath(cache, e), e => File.Exists(e) ? File.GetLastWriteTimeUtc(e) : Directory.GetLastWriteTimeUtc(e));
        var before = Entries();

        // When the model stage downloads it again, online
        Download();

        // Then no file or folder of the cache was written, replaced or added (refs/main included, as huggingface_hub leaves it)
        Assert.That(Entries(), Is.EqualTo(before));
    }

    [Test]
    public void Download_Should_TakeTheVariant_When_TheRepoHasIt()
    {
        var snapshot = Download("fp16");

        Assert.That(snapshot.ContentHashes.Keys, Does.Contain("unet/diffusion_pytorch_model.fp16.safetensors"));
        Assert.That(snapshot.ContentHashes.Keys, Does.Contain("vae/diffusion_pytorch_model.safetensors"), "components without the variant fall back to full precision");
    }

    [Test]
    public void Cache_Should_NotAnswerForAVariant_When_ItHoldsOnlyThePlainDownload()
    {
        // Given the plain files of the commit in the cache: a plan for fp16 must ask the Hub (which has the variant), or it
        // would fingerprint the plain files and the run then fetch and record the variant under that fingerprint
        Download();
        var cache = new HubCache(Temp.File("hub"));

        Assert.That(HubSnapshotDownloader.FromCache(cache, new HubModelRef("org/sd", "main"), "fp16"), Is.Null);
        Assert.That(HubSnapshotDownloader.FromCache(cache, new HubModelRef("org/sd", "main"), null), Is.Not.Null);
        Download("fp16");
        Assert.That(HubSnapshotDownloader.FromCache(cache, new HubModelRef("org/sd", "main"), "fp16")!.ContentHashes.Keys, Does.Contain("unet/diffusion_pytorch_model.fp16.safetensors"));
    }

    [Test]
    public void Download_Should_FetchTheCommitTheCachesRefNames_When_ItsSnapshotIsComplete_AsThePlanFingerprintedIt()
    {
        // Given main downloaded at one commit, and the branch moved on the Hub since
        const string moved = "fedcba0987654321fedcba0987654321fedcba09";
        var first = Download();
        _ = new FakeHub(Server, "org/sd", _files.ToDictionary(f => f.Key, f => f.Key == "unet/diffusion_pytorch_model.safetensors" ? [.. f.Value, 1] : f.Value), moved);
        var planned = HubSnapshotDownloader.FromCache(new HubCache(Temp.File("hub")), new HubModelRef("org/sd", "main"), null)!;

        // When the model stage downloads it again, online
        var again = Download();

        // Then it holds the commit the plan fingerprinted from refs/main, not the branch's new head under that fingerprint
        Assert.That((planned.Commit, again.Commit), Is.EqualTo((first.Commit, first.Commit)));
        Assert.That(again.ContentHashes, Is.EqualTo(planned.ContentHashes));
        Assert.That(Server.Requests, Has.None.Contains(moved));
    }

    [Test]
    public void Offline_Should_AnswerFromTheCache_And_FailClearly_When_NotCached()
    {
        var error = Assert.Throws<StageFailedException>(() => Download(offline: true))!;
        Assert.That(error.Message, Does.Contain("HF_HUB_OFFLINE").And.Contain("org/sd"));

        var online = Download();
        var offline = Download(offline: true);

        Assert.That(offline.Commit, Is.EqualTo(online.Commit));
        Assert.That(offline.ContentHashes, Is.EqualTo(online.ContentHashes));
    }

    [Test]
    public void Download_Should_ResumeAnIncompleteBlob()
    {
        byte[] unet = _files["unet/diffusion_pytorch_model.safetensors"];
        string blob = Temp.File($"hub/models--org--sd/blobs/{Sha256(unet)}");
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        File.WriteAllBytes(blob + ".incomplete", unet[..40]);

        Download();

        Assert.That(Server.Requests, Has.Some.Contains("unet/diffusion_pytorch_model.safetensors Range=bytes=40-"));
        Assert.That(File.ReadAllBytes(blob), Is.EqualTo(unet));
    }

    [Test]
    public void Download_Should_Fail_When_ALfsFileDoesNotMatchItsHash()
    {
        Server.Serve($"/org/sd/resolve/{Commit}/vae/diffusion_pytorch_model.safetensors", Encoding.UTF8.GetBytes(new string('y', _files["vae/diffusion_pytorch_model.safetensors"].Length)));

        var error = Assert.Throws<StageFailedException>(() => Download())!;

        Assert.That(error.Message, Does.Contain("checksum mismatch").And.Contain("vae/diffusion_pytorch_model.safetensors"));
    }

    /// <summary>Answers <paramref name="from"/> with 307 to <paramref name="to"/>, as the Hub answers a renamed repository's old paths.</summary>
    private void Redirect(string from, string to) =>
        Server.Serve(from, new TestHttpServer.Route { Body = [], Status = 307, Headers = { ["Location"] = to } });

    [Test]
    public void Download_Should_FollowTheHubsRedirects_When_TheRepositoryWasRenamed()
    {
        // Given org/old renamed to org/sd: the Hub redirects the old name's API and file paths to the new name's
        Redirect("/api/models/org/old/revision/main", "/api/models/org/sd/revision/main");
        Redirect($"/api/models/org/old/tree/{Commit}", $"/api/models/org/sd/tree/{Commit}?recursive=true&expand=false");
        foreach (string path in _files.Keys) Redirect($"/org/old/resolve/{Commit}/{path}", $"/org/sd/resolve/{Commit}/{path}");

        // When a run names the old repository
        var snapshot = HubDownloads.Model(Server, Temp.File("hub"), repo: "org/old");

        // Then it downloads the renamed one's files (huggingface_hub's requests follow the redirects too), its token sent to the Hub alone
        string unet = Path.Combine(snapshot.Folder, "unet", "diffusion_pytorch_model.safetensors");
        Assert.That(File.ReadAllBytes(unet), Is.EqualTo(_files["unet/diffusion_pytorch_model.safetensors"]));
        Assert.That(snapshot.Commit, Is.EqualTo(Commit));
    }

    [Test]
    public void Download_Should_RefuseARedirectOffTheHub()
    {
        Redirect("/api/models/org/old/revision/main", "http://example.invalid/api/models/org/sd/revision/main");

        var error = Assert.Throws<StageFailedException>(() => HubDownloads.Model(Server, Temp.File("hub"), repo: "org/old"))!;

        Assert.That(error.Message, Does.Contain("redirected").And.Contain("example.invalid").And.Contain("off its own host"));
        Assert.That(Server.Requests, Has.None.Contains("org/sd"));
    }

    [Test]
    public void HubModelRef_Should_ParseRepoAndRevision()
    {
        Assert.That(HubModelRef.TryParse("hf:stable-diffusion-v1-5/stable-diffusion-v1-5"), Is.EqualTo(new HubModelRef("stable-diffusion-v1-5/stable-diffusion-v1-5", "main")));
        Assert.That(HubModelRef.TryParse("hf:org/name@v2"), Is.EqualTo(new HubModelRef("org/name", "v2")));
        Assert.That(HubModelRef.TryParse("/local/folder"), Is.Null);
        Assert.Throws<SdPipeline.Config.ConfigException>(() => HubModelRef.TryParse("hf:justname"));
    }
}
