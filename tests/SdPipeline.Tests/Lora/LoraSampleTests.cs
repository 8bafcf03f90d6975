using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Images;
using SdPipeline.Lora;
using SdPipeline.Pipeline;
using SdPipeline.Reporting;
using SdPipeline.Sampling;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Lora;

/// <summary>A LoRA run through sample and report, and an external LoRA file as a sample-stage input.</summary>
public sealed class LoraSampleTests
{
    private static readonly string[] Chain = ["model", "download", "latents", "train", "sample", "report"];

    private static string[] Sets() =>
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0",
        "download.count=16", "latents.resolution=64", "latents.center_crop=true", "train.train_batch_size=4", "train.max_train_steps=2",
        "train.lr_warmup_steps=0", "train.heldout_max_items=4", """sample.prompts=["a red circle on a blue background"]""",
        "sample.seeds=5", "sample.steps=2", "sample.sampler=ddim", "train.method=lora", "train.learning_rate=0.05", "sample.lora_scale=0.8",
    ];

    [Test]
    public void LoraChain_Should_SampleBasePlusLora_AndReportTheMethod()
    {
        // Given the chain run with train.method=lora
        using var harness = new PipelineHarness();
        string[] sets = Sets();
        var report = harness.RunChain(Chain, sets);
        var sample = harness.Plan("sample", sets);
        var train = harness.Plan("train", sets);

        // Then the second row is base + LoRA at the configured strength: tagged so, and different from the base
        var records = JsonConvert.DeserializeObject<List<SampleRecord>>(File.ReadAllText(Path.Combine(sample.ArtifactDirectory!, SampleStage.SamplesFile)))!;
        var tuned = File.ReadAllBytes(Path.Combine(sample.ArtifactDirectory!, records[0].FineTuned));
        var text = PngText.Read(tuned);
        Assert.That(text["lora"], Is.EqualTo(LoraFile.DiffusersFileName));
        Assert.That(text["lora_scale"], Is.EqualTo("0.8"));
        Assert.That(tuned, Is.Not.EqualTo(File.ReadAllBytes(Path.Combine(sample.ArtifactDirectory!, records[0].Base))));

        // And the report states the method, the trainable parameters and the files, and delivers the adapters
        string markdown = File.ReadAllText(Path.Combine(report.Directory, ReportWriter.MarkdownFileName));
        Assert.That(markdown, Does.Contain("| method | LoRA (rank 4, alpha 4, on attention) |").And.Contain("trainable parameters")
            .And.Contain($"file {LoraFile.DiffusersFileName}").And.Contain("base + LoRA ×0.8"));
        var summary = JObject.Parse(File.ReadAllText(Path.Combine(report.Directory, ReportWriter.SummaryFileName)));
        Assert.That(summary["training"]!["method"]!.ToString(), Is.EqualTo("lora"));
        Assert.That(summary["training"]!["trainable_parameters"]!.Value<long>(), Is.EqualTo(Manifest.TryRead(Path.Combine(train.ArtifactDirectory!, Manifest.FileName))!.Summary["trainable_parameters"]!.Value<long>()));
        Assert.That(File.Exists(Path.Combine(report.Directory, ReportStage.DeliverablesFolder, TrainStage.LoraFolder, LoraFile.KohyaFileName)), Is.True);
        Assert.That(Directory.Exists(Path.Combine(report.Directory, ReportStage.DeliverablesFolder, "model")), Is.False);
    }

    [Test]
    public void ExternalLoraFile_Should_BeASampleInput_ByItsContent()
    {
        using var harness = new PipelineHarness();
        string file = Path.Combine(harness.Root, "style.safetensors");
        File.WriteAllBytes(file, [1, 2, 3]);
        string[] sets = [.. Sets(), $"sample.lora={file}"];
        string before = harness.Plan("sample", sets).Fingerprint!;

        File.WriteAllBytes(file, [1, 2, 4]);
        string after = harness.Plan("sample", sets).Fingerprint!;

        Assert.That(after, Is.Not.EqualTo(before));
        Assert.That(harness.Plan("train", sets).Fingerprint, Is.EqualTo(harness.Plan("train", Sets()).Fingerprint), "sampling keys do not retrain");
        var missing = harness.Plan("sample", [.. Sets(), $"sample.lora={file}.missing"]);
        Assert.That(missing.Status, Is.EqualTo(StageStatus.Error));
        Assert.That(string.Join(" ", missing.Reasons), Does.Contain("sample.lora"));
    }
}
