using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;

namespace SdPipeline.Tests.BaseModel;

/// <summary>The model stage's fingerprint follows the weights' content, not the name they were reached by.</summary>
[NonParallelizable] // sets HF_* environment variables
public sealed class ModelStageTests
{
    private TempFolder _temp = null!;

    [SetUp]
    public void SetUp() => _temp = new TempFolder();

    [TearDown]
    public void TearDown()
    {
        _temp.Dispose();
        foreach (string name in new[] { "HF_ENDPOINT", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN" })
            Environment.SetEnvironmentVariable(name, null);
    }

    private StagePlan PlanModel(string modelBase) =>
        new Planner(ProjectStages.Graph, new ArtifactStore(_temp.File("artifacts")), new FileHashCache(null))
            .Plan(ConfigLoader.Load(null, [$"model.base={modelBase}"])).Single(p => p.Stage.Name == "model");

    private BuildOutcome RunModel(string modelBase) =>
        new StageExecutor(ProjectStages.Graph, new ArtifactStore(_temp.File("artifacts")), new FileHashCache(null))
            .Run("model", ConfigLoader.Load(null, [$"model.base={modelBase}"]), false, _ => { }, NullProgress.Instance, CancellationToken.None);

    private string CopyOfTinySd(string name)
    {
        string target = _temp.File(name);
        foreach (string file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), "*", SearchOption.AllDirectories))
        {
            string destination = Path.Combine(target, Path.GetRelativePath(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), file));
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(file, destination);
        }
        return target;
    }

    [Test]
    public void LocalFolder_Should_HaveTheSameFingerprint_When_TheSameWeightsMove()
    {
        string first = CopyOfTinySd("a"), second = CopyOfTinySd("b");

        Assert.That(PlanModel(first).Fingerprint, Is.EqualTo(PlanModel(second).Fingerprint));
    }

    [Test]
    public void LocalFolder_Should_BeStale_When_AWeightFileChanges()
    {
        string folder = CopyOfTinySd("a");
        RunModel(folder);
        Assert.That(PlanModel(folder).Status, Is.EqualTo(StageStatus.Cached));

        string weights = Path.Combine(folder, "vae", "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(weights);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(weights, bytes);
        var plan = PlanModel(folder);

        Assert.That(plan.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(plan.Reasons, Is.EqualTo(new[] { "input file:vae/diffusion_pytorch_model.safetensors changed content" }));
    }

    [Test]
    public void LocalFolder_Should_BeStale_When_ATokenIsAddedToTheTokenizer()
    {
        // Given a built model stage, then a textual-inversion token saved into its tokenizer (its prompts' ids change)
        string folder = CopyOfTinySd("a");
        RunModel(folder);
        File.WriteAllText(Path.Combine(folder, "tokenizer", "added_tokens.json"), """{ "<cat-toy>": 49408 }""");

        // When it is planned again
        var plan = PlanModel(folder);

        // Then the file is part of the fingerprint, as it is of a Hub download's files
        Assert.That(plan.Status, Is.EqualTo(StageStatus.Stale));
        Assert.That(plan.Reasons, Has.Some.Contains("file:tokenizer/added_tokens.json"));
    }

    [Test]
    public void LocalFolder_Should_RecordTheFolderForDownstreamStages()
    {
        string folder = CopyOfTinySd("a");

        var outcome = RunModel(folder);
        var resolved = SdPipeline.BaseModel.ResolvedModel.Read(outcome.Directory);

        Assert.That(resolved.Folder, Is.EqualTo(folder));
        Assert.That(resolved.ContentHashes.Keys, Does.Contain("unet/diffusion_pytorch_model.safetensors"));
    }

    [Test]
    public void Variant_Should_BeRecordedForTheLoaders_OnlyWhenTheFolderHasItsFiles()
    {
        // Given a folder with the plain weights only: the variant's artifact is the plain files' (the same fingerprint), so
        // the loaders are told no variant, and a later fp16 file beside them is not read under that fingerprint
        string plain = CopyOfTinySd("plain");
        var withoutFiles = new StageExecutor(ProjectStages.Graph, new ArtifactStore(_temp.File("artifacts")), new FileHashCache(null))
            .Run("model", ConfigLoader.Load(null, [$"model.base={plain}", "model.variant=fp16"]), false, _ => { }, NullProgress.Instance, CancellationToken.None);
        Assert.That(SdPipeline.BaseModel.ResolvedModel.Read(withoutFiles.Directory).Variant, Is.Null);
        Assert.That(withoutFiles.Manifest.Fingerprint, Is.EqualTo(PlanModel(plain).Fingerprint));

        // And a folder holding the variant's VAE records it, with that file among its inputs
        string both = CopyOfTinySd("both");
        File.Copy(Path.Combine(both, "vae", "diffusion_pytorch_model.safetensors"), Path.Combine(both, "vae", "diffusion_pytorch_model.fp16.safetensors"));
        var withFiles = new StageExecutor(ProjectStages.Graph, new ArtifactStore(_temp.File("artifacts2")), new FileHashCache(null))
            .Run("model", ConfigLoader.Load(null, [$"model.base={both}", "model.variant=fp16"]), false, _ => { }, NullProgress.Instance, CancellationToken.None);
        var resolved = SdPipeline.BaseModel.ResolvedModel.Read(withFiles.Directory);
        Assert.That(resolved.Variant, Is.EqualTo("fp16"));
        Assert.That(resolved.ContentHashes.Keys, Does.Contain("vae/diffusion_pytorch_model.fp16.safetensors").And.Contain("unet/diffusion_pytorch_model.safetensors"));
    }

    [Test]
    public void MissingFolder_Should_BeAConfigurationError_NamingIt()
    {
        var plan = PlanModel("/no/such/model");

        Assert.That(plan.Status, Is.EqualTo(StageStatus.Error));
        Assert.That(plan.Reasons.Single(), Does.Contain("/no/such/model"));
    }

    [Test]
    public void LocalFolderWithoutAComponentsWeights_Should_NameTheFolder_NotTheHub()
    {
        // Given a local folder whose UNet was saved as pickle (.bin), and an SDXL refiner's layout (text_encoder_2/ without text_encoder/)
        string pickled = CopyOfTinySd("pickled");
        File.Move(Path.Combine(pickled, "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(pickled, "unet", "diffusion_pytorch_model.bin"));
        string refiner = _temp.File("refiner");
        foreach (string file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Fixtures, "tiny-sdxl"), "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(Path.Combine(RepoPaths.Fixtures, "tiny-sdxl"), file);
            if (relative.StartsWith("text_encoder" + Path.DirectorySeparatorChar, StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(refiner, relative))!);
            File.Copy(file, Path.Combine(refiner, relative));
        }

        // When the model stage plans them
        var pickledError = Assert.Throws<WeightsException>(() => PlanModel(pickled));
        var refinerError = Assert.Throws<WeightsException>(() => PlanModel(refiner));

        // Then each error says which folder lacks what (it said "on the Hub" of a local folder)
        Assert.That(pickledError!.Message, Does.StartWith($"unet/ in {pickled} has only pickle (.bin) weights"));
        Assert.That(refinerError!.Message, Does.StartWith($"no text_encoder/ in {refiner}").And.Contain("refiner").And.Not.Contain("Hub"));
    }

    [Test]
    public void MissingFolder_Should_SuggestTheHfForm_When_ItIsWrittenAsAHubId()
    {
        // diffusers' --pretrained_model_name_or_path takes a Hub id bare; here that is a relative path, which does not exist
        var plan = PlanModel("stable-diffusion-v1-5/stable-diffusion-v1-5");

        Assert.That(plan.Status, Is.EqualTo(StageStatus.Error));
        Assert.That(plan.Reasons.Single(), Does.Contain("model.base=hf:stable-diffusion-v1-5/stable-diffusion-v1-5")
            .And.Contain(Directory.GetCurrentDirectory()));
        Assert.That(PlanModel("/no/such/model").Reasons.Single(), Does.Not.Contain("hf:"));
    }

    [Test]
    public void HubModel_Should_HaveTheSameFingerprintBeforeAndAfterDownload_And_LandInTheHubCache()
    {
        // Given a fake Hub and an empty Hub cache
        using var server = new TestHttpServer();
        new FakeHub(server, "org/sd");
        Environment.SetEnvironmentVariable("HF_ENDPOINT", server.BaseUri.ToString());
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", _temp.File("hub"));

        // When the plan is made before and after the model stage downloads it
        var before = PlanModel("hf:org/sd");
        var outcome = RunModel("hf:org/sd");
        var after = PlanModel("hf:org/sd");

        // Then the fingerprint did not move, the stage is cached, and the files are in the Hub cache layout
        Assert.That(after.Fingerprint, Is.EqualTo(before.Fingerprint));
        Assert.That(after.Status, Is.EqualTo(StageStatus.Cached));
        var resolved = SdPipeline.BaseModel.ResolvedModel.Read(outcome.Directory);
        Assert.That(resolved.Folder, Is.EqualTo(_temp.File($"hub/models--org--sd/snapshots/{FakeHub.Commit}")));
        Assert.That(resolved.Commit, Is.EqualTo(FakeHub.Commit));

        // And offline, the cache alone answers
        server.Dispose();
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        Assert.That(PlanModel("hf:org/sd").Fingerprint, Is.EqualTo(before.Fingerprint));
    }

    [Test]
    public void HubModel_Should_BeAnError_When_OfflineAndNotCached()
    {
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", _temp.File("hub"));
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");

        var plan = PlanModel("hf:org/never-downloaded");

        Assert.That(plan.Status, Is.EqualTo(StageStatus.Error));
        Assert.That(plan.Reasons.Single(), Does.Contain("HF_HUB_OFFLINE").And.Contain("org/never-downloaded"));
    }
}
