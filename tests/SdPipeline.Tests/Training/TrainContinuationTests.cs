using Newtonsoft.Json.Linq;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Training;

/// <summary>Raising train.max_train_steps of a finished run continues it instead of starting over, when that gives the same run.</summary>
public sealed class TrainContinuationTests
{
    private static readonly string[] Small =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0", "download.count=24", "latents.resolution=64", "latents.center_crop=true", "latents.random_flip=true",
        "train.train_batch_size=4", "train.learning_rate=1e-3", "train.lr_scheduler=constant_with_warmup", "train.lr_warmup_steps=3", "train.use_ema=true",
        "train.validation_steps=3", "train.checkpointing_steps=4", "train.heldout_max_items=4",
        "train.validation_prompts=[\"a red circle on a blue background\"]", "train.validation_inference_steps=3",
    ];

    private static BuildOutcome Train(PipelineHarness harness, string[] sets, IProgressSink? progress = null)
    {
        harness.RunChain(["model", "download", "latents"], sets);
        return new StageExecutor(ProjectStages.Graph, harness.Store, new FileHashCache(null))
            .Run("train", PipelineHarness.Config(sets), false, line => harness.Log.Add(line), progress ?? NullProgress.Instance, CancellationToken.None);
    }

    private static Dictionary<string, byte[]> Weights(string folder)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors"));
        return file.Entries.ToDictionary(e => e.Name, e => file.Bytes(e).ToArray());
    }

    private static List<string> Records(string folder, string kind) => File.ReadLines(Path.Combine(folder, FineTuner.MetricsFile)).Select(JObject.Parse)
        .Where(j => j["kind"]!.ToString() == kind).Select(j => $"{j["step"]} {j["loss"] ?? j["heldout_loss"]} {j["lr"]}").ToList();

    [Test, Category("Slow")]
    public void RaisedMaxTrainSteps_Should_TrainOnlyTheExtraSteps_AndEndWithTheLongerRunsWeights()
    {
        // Given a finished 5-step run
        using var harness = new PipelineHarness();
        var shorter = Train(harness, [.. Small, "train.max_train_steps=5"]);

        // When the steps are raised to 9, the plan says it continues, and the run trains steps 6-9 only
        var plan = harness.Plan("train", [.. Small, "train.max_train_steps=9"]);
        Assert.That(plan.Reasons, Has.Some.EqualTo($"continues from step 5 of [{ArtifactStore.Short(shorter.Manifest.Fingerprint)}]"));
        // and gc for that config (the Clean target before a build) keeps what it continues from
        var plans = new Planner(ProjectStages.Graph, harness.Store, new FileHashCache(null)).Plan(PipelineHarness.Config([.. Small, "train.max_train_steps=9"]));
        Assert.That(new GarbageCollector(harness.Store).Collect(plans, dryRun: true).Select(r => r.Path), Has.None.Contains(ArtifactStore.Short(shorter.Manifest.Fingerprint)));
        Assert.That(Directory.Exists(shorter.Directory));
        var progress = new StepRecorder();
        var continued = Train(harness, [.. Small, "train.max_train_steps=9"], progress);
        Assert.That(progress.Values, Is.EqualTo(new double[] { 5, 6, 7, 8, 9 }), "the bar starts at the finished run's step and advances once per new step");
        var summary = continued.Manifest.SummaryAs<TrainSummary>();
        Assert.That(summary.ContinuedFrom, Is.EqualTo(new ContinuedRun(shorter.Manifest.Fingerprint, 5)));
        Assert.That(summary.Steps, Is.EqualTo(9));
        Assert.That(continued.Manifest.Fingerprint, Is.EqualTo(plan.Fingerprint), "the fingerprint is of the requested config");

        // Then it ends with exactly the weights of a 9-step run from scratch (a checkpoint holds the whole state: the same run),
        // with the same losses and learning rates step for step, and the same validation images
        using var scratchHarness = new PipelineHarness();
        var scratch = Train(scratchHarness, [.. Small, "train.max_train_steps=9"]);
        Assert.That(scratch.Manifest.Fingerprint, Is.EqualTo(continued.Manifest.Fingerprint));
        var expected = Weights(scratch.Directory);
        var actual = Weights(continued.Directory);
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (name, bytes) in expected)
            Assert.That(actual[name], Is.EqualTo(bytes), name);
        Assert.That(Records(continued.Directory, "train"), Is.EqualTo(Records(scratch.Directory, "train")));
        var scratchImages = ValidationImages.Read(scratch.Directory)!.Steps;
        var continuedImages = ValidationImages.Read(continued.Directory)!.Steps;
        // The continued run also keeps the finished run's last row (step 5): where it ended.
        Assert.That(continuedImages.Select(s => s.Step), Is.EqualTo(new long[] { 0, 3, 5, 6, 9 }));
        foreach (var row in scratchImages)
            Assert.That(File.ReadAllBytes(continuedImages.Single(s => s.Step == row.Step).Files[0]!), Is.EqualTo(File.ReadAllBytes(row.Files[0]!)), $"step {row.Step}");
    }

    [Test, Category("Slow")]
    public void ScheduleDecayingToTheTotal_Should_StartOver_AndThePlanSaysWhy()
    {
        using var harness = new PipelineHarness();
        string[] cosine = [.. Small, "train.lr_scheduler=cosine", "train.lr_warmup_steps=0", "train.validation_prompts=[]"];
        Train(harness, [.. cosine, "train.max_train_steps=3"]);

        var raised = harness.Plan("train", [.. cosine, "train.max_train_steps=6"]);
        var otherChange = harness.Plan("train", [.. cosine, "train.max_train_steps=6", "train.learning_rate=2e-3"]);
        var lowered = harness.Plan("train", [.. cosine, "train.max_train_steps=2"]);

        Assert.That(raised.Continuation, Is.Null);
        Assert.That(raised.Reasons, Has.Some.StartsWith("starts over: train.lr_scheduler=cosine sets each step's learning rate from the total step count, so step 2 of a 6-step run differs"));
        Assert.That(otherChange.Continuation, Is.Null);
        Assert.That(otherChange.Reasons, Has.None.Contains("continues").And.None.Contains("starts over"), "another key changed: not the same run made longer");
        Assert.That(lowered.Continuation, Is.Null);
        Assert.That(lowered.Reasons, Has.None.Contains("continues").And.None.Contains("starts over"));
    }

    [Test]
    public void Judge_Should_ContinueACosineRun_When_ItEndedInsideTheWarmup()
    {
        // Inside the warm-up the rate is step / warmup whatever the total, so those steps are the same under either total.
        var verdict = Judge(["train.lr_scheduler=cosine", "train.lr_warmup_steps=10", "train.max_train_steps=4"], ["train.lr_scheduler=cosine", "train.lr_warmup_steps=10", "train.max_train_steps=40"], earlierSteps: 4);
        Assert.That(verdict?.From, Is.EqualTo("step 4"));
        var afterWarmup = Judge(["train.lr_scheduler=linear", "train.lr_warmup_steps=2", "train.max_train_steps=4"], ["train.lr_scheduler=linear", "train.lr_warmup_steps=2", "train.max_train_steps=40"], earlierSteps: 4);
        Assert.That(afterWarmup?.StartOverReason, Does.StartWith("train.lr_scheduler=linear"));
    }

    [Test]
    public void Judge_Should_ContinueAnEpochRun_When_TheEpochsGrow()
    {
        var verdict = Judge(["train.max_train_steps=0", "train.num_train_epochs=2"], ["train.max_train_steps=0", "train.num_train_epochs=5"], earlierSteps: 12);
        Assert.That(verdict?.Position, Is.EqualTo(12));
        var switched = Judge(["train.max_train_steps=12"], ["train.max_train_steps=0", "train.num_train_epochs=5"], earlierSteps: 12);
        Assert.That(switched?.StartOverReason, Does.Contain("set train.max_train_steps to continue it"));
    }

    /// <summary>The train stage's verdict on an earlier finished run of <paramref name="earlierSets"/> with a checkpoint at its last step.</summary>
    private static ContinuationVerdict? Judge(string[] earlierSets, string[] currentSets, long earlierSteps)
    {
        using var temp = new TempFolder();
        var earlierInputs = Inputs(earlierSets);
        string checkpoint = TrainingCheckpoint.Folder(temp.File(FineTuner.CheckpointsFolder), earlierSteps);
        Directory.CreateDirectory(checkpoint);
        File.WriteAllText(Path.Combine(checkpoint, "training_state.json"), "{}");
        var earlier = new Manifest
        {
            Stage = "train", Fingerprint = earlierInputs.Compute(), FingerprintInputs = earlierInputs.ToJson(), EffectiveConfig = new JObject(), Files = [],
            Summary = Manifest.SummaryOf(new TrainSummary { Steps = earlierSteps }),
        };
        return TrainContinuation.Judge(new ContinuationCandidate(PipelineHarness.Config(currentSets), Inputs(currentSets), earlier, temp.Path));
    }

    private static FingerprintInputs Inputs(string[] sets) =>
        new("train", TrainStage.SchemaVersion, PipelineHarness.Config(sets).Slice(TrainStage.ConfigKeys), new Dictionary<string, string>(), new Dictionary<string, string>());

    /// <summary>Records every value the train bar is set to.</summary>
    private sealed class StepRecorder : IProgressSink
    {
        public List<double> Values { get; } = [];

        public IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items) =>
            description == "train steps" ? new Task(Values) : new Task([]);

        private sealed class Task(List<double> values) : IProgressTask
        {
            public void Advance(double amount) { }
            public void SetTotal(double total) { }
            public void SetValue(double value) => values.Add(value);
            public void Dispose() { }
        }
    }
}
