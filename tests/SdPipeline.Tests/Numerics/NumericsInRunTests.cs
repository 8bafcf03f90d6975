using SdPipeline.Models.Shared;
using SdPipeline.Numerics;
using SdPipeline.Reporting;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Numerics;

/// <summary>The self-check as a user meets it: before training, in the log, the train manifest and the report.</summary>
[NonParallelizable] // switches oneDNN and the injected fault for the whole process
public sealed class NumericsInRunTests
{
    private static readonly string[] Chain = ["model", "download", "latents", "train", "sample", "report"];

    private static readonly string[] Sets =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0",
        "download.count=16", "latents.resolution=64", "latents.center_crop=true", "train.train_batch_size=4", "train.max_train_steps=2",
        "train.lr_warmup_steps=0", "train.heldout_max_items=4", "sample.heldout_prompts=1", "sample.seeds=5", "sample.steps=2", "sample.sampler=ddim",
    ];

    private bool _oneDnnBefore;

    [SetUp]
    public void Remember() => _oneDnnBefore = OneDnn.Enabled;

    [TearDown]
    public void Restore()
    {
        FaultInjection.Active = false;
        OneDnn.TrySetEnabled(_oneDnnBefore);
    }

    [Test]
    public void TrainStage_Should_RouteAroundAWrongKernel_And_SaySoInTheLogManifestAndReport()
    {
        // Given a process whose oneDNN convolution gives a wrong input gradient for conv_out (injected)
        using var harness = new PipelineHarness();
        OneDnn.TrySetEnabled(true);
        FaultInjection.Active = true;

        // When the chain runs through training to the report
        var report = harness.RunChain(Chain, Sets);

        // Then training ran without oneDNN, and the log, the train manifest and the report say so in one line
        Assert.That(OneDnn.Enabled, Is.False);
        string line = harness.Log.Single(l => l.StartsWith("numerics: oneDNN off — "));
        Assert.That(line, Does.Contain("conv2d 64→4 k3 s1 p1 (float32): grad input off by"), "builtin:tiny UNet's conv_out, named with its error");
        var train = harness.Plan("train", Sets);
        var manifest = SdPipeline.Pipeline.Manifest.TryRead(Path.Combine(train.ArtifactDirectory!, SdPipeline.Pipeline.Manifest.FileName))!;
        var verdict = NumericsVerdict.FromJson(manifest.Summary["numerics"])!;
        Assert.That(verdict.Workaround, Is.EqualTo("oneDNN off"));
        Assert.That(verdict.Line, Is.EqualTo(line));
        Assert.That(File.ReadAllText(Path.Combine(report.Directory, ReportWriter.MarkdownFileName)), Does.Contain("| numerics | oneDNN off — "));
        Assert.That(File.ReadAllText(Path.Combine(report.Directory, ReportWriter.HtmlFileName)), Does.Contain("<dt>numerics</dt><dd>oneDNN off — "));
    }

    [Test]
    public void TrainStage_Should_StopBeforeTraining_When_OneDnnIsForcedOnAndAKernelIsWrong()
    {
        using var harness = new PipelineHarness();
        harness.RunChain(["model", "download", "latents"], Sets);
        OneDnn.TrySetEnabled(true);
        FaultInjection.Active = true;

        var error = Assert.Throws<NumericsException>(() => harness.Run("train", [.. Sets, "runtime.onednn=on"]));

        Assert.That(error!.Message, Does.Contain("conv2d 64→4 k3 s1 p1").And.Contain("runtime.onednn=auto"));
        Assert.That(harness.Log, Has.None.Contains("train: 2 steps"), "no step was trained");
    }
}
