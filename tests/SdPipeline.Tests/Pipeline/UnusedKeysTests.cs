using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Pipeline;

/// <summary>A key the config leaves unused changes no fingerprint: editing it reruns nothing.</summary>
public sealed class UnusedKeysTests
{
    private static readonly string[] Base =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "latents.resolution=64",
        "train.max_train_steps=10", "train.lr_scheduler=constant",
    ];

    private static Dictionary<string, string?> Fingerprints(params string[] sets)
    {
        using var temp = new TempFolder();
        var plans = new Planner(ProjectStages.Graph, new ArtifactStore(temp.File("artifacts")), new FileHashCache(null)).Plan(ConfigLoader.Load(null, [.. Base, .. sets]));
        return plans.ToDictionary(p => p.Stage.Name, p => p.Fingerprint);
    }

    private static string[] Stale(string[] before, string[] after)
    {
        var a = Fingerprints(before);
        var b = Fingerprints(after);
        return [.. a.Keys.Where(stage => stage != "report" && a[stage] != b[stage])];
    }

    [TestCase("train.lr_warmup_steps=7")]                 // a constant schedule has no warm-up
    [TestCase("train.num_train_epochs=3")]                // max_train_steps counts the run
    [TestCase("train.lr_num_cycles=3")]                   // cosine_with_restarts only
    [TestCase("train.lr_power=2")]                        // polynomial only
    [TestCase("train.keep_tags=2")]                       // only with shuffle_tags
    [TestCase("train.lora_rank=16")]                      // a full fine-tune
    [TestCase("train.ema_decay=0.99")]                    // no EMA
    [TestCase("train.validation_guidance_scale=3")]       // no validation prompts
    [TestCase("sample.lora_scale=0.5")]                   // no LoRA to scale
    public void UnusedKey_Should_LeaveEveryStageCached(string set)
    {
        Assert.That(Stale([], [set]), Is.Empty);
    }

    [TestCase(new[] { "train.lr_scheduler=linear" }, "train.lr_warmup_steps=7")]
    [TestCase(new[] { "train.lr_scheduler=cosine_with_restarts" }, "train.lr_num_cycles=3")]
    [TestCase(new[] { "train.method=lora" }, "train.lora_rank=16")]
    [TestCase(new[] { "train.use_ema=true" }, "train.ema_decay=0.99")]
    [TestCase(new[] { "train.max_train_steps=0" }, "train.num_train_epochs=3")]
    public void SameKey_Should_RetrainAndResample_When_TheConfigUsesIt(string[] uses, string set)
    {
        Assert.That(Stale(uses, [.. uses, set]), Is.EqualTo(new[] { "train", "sample" }));
    }

    [Test]
    public void CentreCrop_Should_LeaveTheLatentsCached_When_VariantsOrSeedChange()
    {
        string[] centre = ["latents.center_crop=true", "latents.random_flip=true"];
        Assert.That(Stale(centre, [.. centre, "latents.variants=3", "latents.seed=7", "latents.bucket_max_side=128"]), Is.Empty);
        Assert.That(Stale(["latents.center_crop=false"], ["latents.center_crop=false", "latents.variants=3"]), Is.EqualTo(new[] { "latents", "train", "sample" }));
    }

    [Test]
    public void Source_Should_MakeTheRegistryNameUnused()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("images"));
        string source = $"download.source={temp.File("images")}";
        Assert.That(Stale([source], [source, "download.dataset=shapes-small"]), Is.Empty);
    }

    [Test]
    public void UnusedKey_Should_KeepTheFingerprintOfAConfigThatNeverSetIt()
    {
        // An artifact built before the key became unused was fingerprinted with the key at its default: it still matches.
        var config = ConfigLoader.Load(null, Base);
        var train = ProjectStages.Graph.Get("train");
        Assert.That(config.Slice(train.ConfigKeys, train.UnusedKeys!(config)).ToString(), Is.EqualTo(config.Slice(train.ConfigKeys).ToString()));
    }
}
