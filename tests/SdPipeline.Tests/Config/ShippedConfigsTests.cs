using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Config;

/// <summary>Every profile in configs/ passes every stage's configuration checks and plans, so none can fail after hours of training.</summary>
[NonParallelizable] // sets HF_* environment variables
public sealed class ShippedConfigsTests
{
    private static IEnumerable<string> Profiles() =>
        Directory.EnumerateFiles(Path.Combine(RepoPaths.Root, "configs"), "*.json").Order(StringComparer.Ordinal).Select(Path.GetFileName)!;

    [TearDown]
    public void TearDown()
    {
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", null);
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
    }

    [TestCaseSource(nameof(Profiles))]
    public void ShippedConfig_Should_PassEveryStagesChecks_And_Plan(string profile)
    {
        using var temp = new TempFolder();
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", temp.File("hub"));
        string previous = Directory.GetCurrentDirectory();
        Directory.SetCurrentDirectory(RepoPaths.Root); // profiles name datasets.json relative to the repository
        try
        {
            var config = ConfigLoader.Load(Path.Combine(RepoPaths.Root, "configs", profile), []);
            foreach (var stage in ProjectStages.Graph.Stages)
                Assert.That(ConfigChecks.Check(stage.Name, config), Is.Empty, $"{profile}: {stage.Name}");

            var plans = new Planner(ProjectStages.Graph, new ArtifactStore(temp.File("artifacts")), new FileHashCache(null)).Plan(config);
            // Offline with an empty Hub cache, a Hub model cannot be resolved (and so neither can what depends on it);
            // any other error is the profile's fault.
            foreach (var plan in plans.Where(p => p.Status == StageStatus.Error))
                Assert.That(plan.Reasons, Has.All.Contains("HF_HUB_OFFLINE").Or.Contains("cannot be resolved"), $"{profile}: {plan.Stage.Name}");
        }
        finally
        {
            Directory.SetCurrentDirectory(previous);
        }
    }

    [Test]
    public void SdxlProfile_Should_PrepareImagesAsDiffusersSdxlScriptsDo()
    {
        // configs/sdxl.json follows train_text_to_image_lora_sdxl.py (README_sdxl.md: --resolution=1024 --random_flip, no
        // --center_crop), whose transform is Resize(resolution, interpolation=BILINEAR) with no option to change it (as in
        // train_text_to_image_sdxl.py), not train_text_to_image.py's default lanczos: other pixels, other latents
        var latents = ConfigLoader.Load(Path.Combine(RepoPaths.Root, "configs", "sdxl.json"), []).Typed.Latents;

        Assert.That((latents.Resolution, latents.Interpolation, latents.CenterCrop, latents.RandomFlip), Is.EqualTo((1024, "bilinear", false, true)));
    }

    [Test]
    public void ConfigWithoutPrompts_Should_BeWarnedAboutAtTheFirstStage_AndRefusedBySample()
    {
        using var harness = new PipelineHarness();
        string[] sets = ["model.builtin_autoencoder_steps=0", "sample.prompts=[]", "sample.heldout_prompts=0"];
        harness.Run("model", sets);
        Assert.That(harness.Log, Has.Some.Contains("warning: sample will refuse this config: no prompts"));
        var error = Assert.Throws<ConfigException>(() => harness.Run("sample", sets));
        Assert.That(error!.Message, Does.StartWith("sample: no prompts"), "the stage named once");
    }
}
