using Newtonsoft.Json;
using SdPipeline.Images;
using SdPipeline.Pipeline;
using SdPipeline.Reporting;
using SdPipeline.Sampling;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Sampling;

/// <summary>The sample and report stages at the end of a short chain on builtin:tiny.</summary>
public sealed class SampleAndReportStageTests
{
    private static readonly string[] Chain = ["model", "download", "latents", "train", "sample", "report"];

    private static string[] Sets() =>
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0",
        "download.count=16", "latents.resolution=64", "latents.center_crop=true", "train.train_batch_size=4", "train.max_train_steps=2",
        "train.lr_warmup_steps=0", "train.heldout_max_items=4", "sample.heldout_prompts=2", """sample.prompts=["a red circle on a blue background"]""",
        "sample.seeds=5,6", "sample.steps=3", "sample.sampler=ddim",
    ];

    [Test]
    public void Chain_Should_WriteSamplesWithMetadata_AndAReport_And_ReuseTrainingWhenOnlyAPromptChanges()
    {
        // Given the whole chain run once
        using var harness = new PipelineHarness();
        string[] sets = Sets();
        var report = harness.RunChain(Chain, sets);
        var sample = harness.Plan("sample", sets);

        // Then every sample carries its generation parameters, and the report exists with its deliverables
        var records = JsonConvert.DeserializeObject<List<SampleRecord>>(File.ReadAllText(Path.Combine(sample.ArtifactDirectory!, SampleStage.SamplesFile)))!;
        Assert.That(records, Has.Count.EqualTo(3 * 2), "three prompts (one configured, two held out) at two seeds");
        var text = PngText.Read(File.ReadAllBytes(Path.Combine(sample.ArtifactDirectory!, records[0].FineTuned)));
        Assert.That(text[Infotext.Keyword], Does.StartWith("a red circle on a blue background\nSteps: 3, Sampler: DDIM, CFG scale: "), "AUTOMATIC1111's PNG Info");
        Assert.That(text, Does.Not.ContainKey("prompt").And.Not.ContainKey("workflow"), "ComfyUI parses these two as its JSON graph and fails on a drop of the image");
        Assert.That(text["seed"], Is.EqualTo("5"));
        Assert.That(text["sampler"], Is.EqualTo("ddim"));
        Assert.That(text["steps"], Is.EqualTo("3"));
        Assert.That(text["size"], Is.EqualTo("64x64"));
        Assert.That(text, Contains.Key("model_fingerprint").And.ContainKey("guidance_scale").And.ContainKey("negative_prompt"));
        var grid = ImageCodec.Identify(File.ReadAllBytes(Path.Combine(sample.ArtifactDirectory!, "grids", "000.png")));
        Assert.That((grid.Width, grid.Height), Is.EqualTo((2 * 64 + 3 * 2, 2 * 64 + 3 * 2)), "two seeds across, base over fine-tuned, 2 px padding");
        foreach (string file in new[] { ReportWriter.HtmlFileName, ReportWriter.MarkdownFileName, ReportWriter.SummaryFileName })
            Assert.That(File.Exists(Path.Combine(report.Directory, ReportStage.DeliverablesFolder, file)), Is.True, file);
        Assert.That(File.ReadAllText(Path.Combine(report.Directory, ReportWriter.MarkdownFileName)), Does.Contain("| train |"));

        // When only a sampling prompt changes
        string[] changed = [.. sets.Where(s => !s.StartsWith("sample.prompts=")), """sample.prompts=["a green square on a white background"]"""];
        var statuses = Chain.ToDictionary(stage => stage, stage => harness.Plan(stage, changed).Status);

        // Then the plan reruns sample and report only, and the training checkpoint is reused
        Assert.That(statuses, Is.EqualTo(new Dictionary<string, StageStatus>
        {
            ["model"] = StageStatus.Cached, ["download"] = StageStatus.Cached, ["latents"] = StageStatus.Cached,
            ["train"] = StageStatus.Cached, ["sample"] = StageStatus.Stale, ["report"] = StageStatus.Stale,
        }));
        Assert.That(harness.Plan("sample", changed).Reasons.Single(), Does.StartWith("sample.prompts changed"));
    }
}
