using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Sampling;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Tests.Training;

/// <summary>The train stage end to end on builtin:tiny and a small shapes set.</summary>
public sealed class TrainStageTests
{
    private static readonly string[] Small =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0", "download.count=24", "latents.resolution=64", "latents.center_crop=true", "latents.random_flip=true",
        "train.train_batch_size=4", "train.max_train_steps=6", "train.lr_warmup_steps=0", "train.learning_rate=1e-3",
        "train.validation_steps=3", "train.checkpointing_steps=2", "train.heldout_max_items=8",
    ];

    private static BuildOutcome Train(PipelineHarness harness, string[] sets, CancellationToken cancellation = default, IProgressSink? progress = null)
    {
        harness.RunChain(["model", "download", "latents"], sets);
        return new StageExecutor(ProjectStages.Graph, harness.Store, new FileHashCache(null))
            .Run("train", PipelineHarness.Config(sets), false, line => harness.Log.Add(line), progress ?? NullProgress.Instance, cancellation);
    }

    private static Dictionary<string, byte[]> Weights(string folder)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors"));
        return file.Entries.ToDictionary(e => e.Name, e => file.Bytes(e).ToArray());
    }

    [Test, Category("Slow")]
    public void InterruptedRun_Should_ResumeToTheSameWeights_BitForBit()
    {
        // Given an uninterrupted run
        using var straight = new PipelineHarness();
        var reference = Train(straight, Small);

        // When another run is stopped after step 3 (as SIGTERM does) and run again
        using var interrupted = new PipelineHarness();
        using var stop = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => Train(interrupted, Small, stop.Token, new StopAt(3, stop)));
        Assert.That(interrupted.Log, Has.Some.Contains("interrupted; checkpoint saved at step 3"));
        var resumed = Train(interrupted, Small);

        // Then it resumed from the checkpoint and ended with exactly the same weights and the same metrics
        Assert.That(interrupted.Log, Has.Some.Contains("resuming from checkpoint-000003"));
        Assert.That(resumed.Manifest.Summary["resumed_from_step"]!.Value<long>(), Is.EqualTo(3));
        var expected = Weights(reference.Directory);
        var actual = Weights(resumed.Directory);
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (name, bytes) in expected)
            Assert.That(actual[name], Is.EqualTo(bytes), name);
        static IEnumerable<string> Losses(string folder) => File.ReadLines(Path.Combine(folder, FineTuner.MetricsFile))
            .Select(JObject.Parse).Select(j => $"{j["kind"]} {j["step"]} {j["loss"] ?? j["heldout_loss"]}");
        Assert.That(Losses(resumed.Directory), Is.EqualTo(Losses(reference.Directory)));
    }

    [Test, Category("Slow")]
    public void RunStoppedAtItsLastStep_Should_StillSummariseItsLosses_When_Resumed()
    {
        // Given a run stopped right after its last step's checkpoint (before the export), then run again: no step is left
        using var harness = new PipelineHarness();
        using var stop = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => Train(harness, Small, stop.Token, new StopAt(6, stop)));

        // (and a checkpoint damaged after the fact is named, with what to delete, rather than failing on a bare file error)
        string state = Directory.GetFiles(harness.Store.StageDirectory("train"), "training_state.safetensors", SearchOption.AllDirectories)
            .Single(f => f.Contains("checkpoint-000006", StringComparison.Ordinal));
        byte[] whole = File.ReadAllBytes(state);
        File.WriteAllBytes(state, whole[..(whole.Length / 2)]);
        var damaged = Assert.Throws<StageFailedException>(() => Train(harness, Small))!;
        Assert.That(damaged.Message, Does.Contain("checkpoint-000006").And.Contain("Delete that checkpoint folder"));
        File.WriteAllBytes(state, whole);

        var resumed = Train(harness, Small);

        // Then its summary carries the losses the run recorded at that step, not NaN and none
        var records = File.ReadLines(Path.Combine(resumed.Directory, FineTuner.MetricsFile)).Select(JObject.Parse).ToList();
        var summary = resumed.Manifest.SummaryAs<TrainSummary>();
        Assert.That(summary.Steps, Is.EqualTo(6));
        Assert.That(summary.FinalLoss, Is.EqualTo(records.Last(r => r.Value<string>("kind") == "train").Value<double>("loss")));
        Assert.That(summary.HeldoutLoss, Is.EqualTo(records.Last(r => r.Value<string>("kind") == "eval").Value<double>("heldout_loss")));
    }

    [Test]
    public void FusedBackwardPass_Should_TrainToTheSameWeightsBitForBit_HoldingNoGradients()
    {
        // Given the same short run without clipping, AdamW stepped after backward and inside it
        string[] sets = [.. Small, "train.max_train_steps=3", "train.max_grad_norm=0"];
        using var plainHarness = new PipelineHarness();
        var plain = Train(plainHarness, sets);
        using var fusedHarness = new PipelineHarness();
        var fused = Train(fusedHarness, [.. sets, "train.fused_backward_pass=true"]);

        // Then the trained UNets are identical, the logged losses too, and the estimate counts no gradients
        var expected = Weights(Path.Combine(plain.Directory, TrainStage.PipelineFolder));
        var actual = Weights(Path.Combine(fused.Directory, TrainStage.PipelineFolder));
        foreach (var (name, bytes) in expected)
            Assert.That(actual[name], Is.EqualTo(bytes), name);
        static List<JObject> Steps(string folder) => File.ReadLines(Path.Combine(folder, FineTuner.MetricsFile))
            .Select(JObject.Parse).Where(j => j["kind"]?.Value<string>() == "train").ToList();
        var plainSteps = Steps(plain.Directory);
        var fusedSteps = Steps(fused.Directory);
        Assert.That(plainSteps, Has.Count.EqualTo(3));
        Assert.That(fusedSteps, Has.Count.EqualTo(3));
        Assert.That(fusedSteps.Select(j => j["loss"]!.Value<double>()), Is.EqualTo(plainSteps.Select(j => j["loss"]!.Value<double>())));
        Assert.That(fusedSteps.Select(j => j["grad_norm"]!.Value<double>()),
            Is.EqualTo(plainSteps.Select(j => j["grad_norm"]!.Value<double>())).Within(1e-4).Percent, "the same norm, summed in another order");
        static double Gradients(string folder) =>
            JObject.Parse(File.ReadAllText(Path.Combine(folder, "preflight.json")))["estimate"]!["gradients_gib"]!.Value<double>();
        Assert.That(Gradients(fused.Directory), Is.Zero);
        Assert.That(Gradients(plain.Directory), Is.GreaterThan(0));

        // And since the result is the same, switching it on does not make the plain run's artifact stale
        Assert.That(plainHarness.Plan("train", [.. sets, "train.fused_backward_pass=true"]).Status, Is.EqualTo(StageStatus.Cached));
    }

    [Test]
    public void VariantOnlyModel_Should_Train_AndItsPipelineLoadWithoutTheVariant()
    {
        // Given a model whose VAE, text encoder and UNet weights exist only as the fp16 variant's files (as a Hub download
        // of model.variant=fp16 has them), and model.variant=fp16
        using var harness = new PipelineHarness();
        string model = Path.Combine(harness.Root, "variant-model");
        foreach (string file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), file).Replace(".safetensors", ".fp16.safetensors", StringComparison.Ordinal);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(model, relative))!);
            File.Copy(file, Path.Combine(model, relative));
        }

        // When it is trained (the latents read its VAE and text encoder, training its UNet)
        var outcome = Train(harness, [.. Small, $"model.base={model}", "model.variant=fp16", "train.max_train_steps=1", "train.validation_steps=0"]);

        // Then the pipeline folder holds the variant's weights under the plain names, which a loader without the variant reads
        string pipeline = Path.Combine(outcome.Directory, TrainStage.PipelineFolder);
        Assert.That(File.ReadAllBytes(Path.Combine(pipeline, "vae", "diffusion_pytorch_model.safetensors")),
            Is.EqualTo(File.ReadAllBytes(Path.Combine(model, "vae", "diffusion_pytorch_model.fp16.safetensors"))));
        using var loaded = StableDiffusionPipeline.FromFolder(DiffusersFolder.Open(pipeline), torch.CPU);
        Assert.That(loaded.Vae, Is.Not.Null);
    }

    [Test]
    public void Result_Should_LoadAsADiffusersFolder_WithTheStrictLoader()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. Small, "train.max_train_steps=2"]);

        using var pipeline = StableDiffusionPipeline.FromFolder(DiffusersFolder.Open(Path.Combine(outcome.Directory, TrainStage.PipelineFolder)), torch.CPU);
        string checkpoint = TrainingCheckpoint.Latest(Path.Combine(outcome.Directory, FineTuner.CheckpointsFolder))!;
        SdPipeline.Weights.StateDictLoader.Load(pipeline.Unet, [Path.Combine(checkpoint, "unet", "diffusion_pytorch_model.safetensors")]);

        Assert.That(Directory.GetDirectories(Path.Combine(outcome.Directory, FineTuner.CheckpointsFolder)).Select(Path.GetFileName),
            Is.EquivalentTo(new[] { "checkpoint-000002" }));
        Assert.That(File.Exists(Path.Combine(outcome.Directory, "preflight.json")), Is.True);
    }

    [Test]
    public void HeldoutLoss_Should_FallBelowTheBaseModels()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. Small, "train.max_train_steps=12", "train.validation_steps=12"]);

        var evals = File.ReadLines(Path.Combine(outcome.Directory, FineTuner.MetricsFile)).Select(JObject.Parse)
            .Where(j => j["kind"]!.ToString() == "eval").ToList();

        Assert.That(evals.First()["step"]!.Value<int>(), Is.EqualTo(0), "the base model is measured before training");
        Assert.That(evals.Last()["heldout_loss"]!.Value<double>(), Is.LessThan(evals.First()["heldout_loss"]!.Value<double>()));
    }

    [Test]
    public void Bf16WithCheckpointing_Should_Train_WithoutALossScaler()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. Small, "train.max_train_steps=2", "train.mixed_precision=bf16", "train.gradient_checkpointing=true"]);

        var steps = File.ReadLines(Path.Combine(outcome.Directory, FineTuner.MetricsFile)).Select(JObject.Parse)
            .Where(j => j["kind"]!.ToString() == "train").ToList();
        Assert.That(steps, Has.Count.EqualTo(2));
        Assert.That(steps.All(j => j["loss_scale"]!.Type == JTokenType.Null && !j["skipped"]!.Value<bool>()), Is.True);
        Assert.That(steps.All(j => double.IsFinite(j["loss"]!.Value<double>())), Is.True);
    }

    [Test]
    public void VPrediction_Should_BeRecordedInTheExportedSchedulerConfig()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. Small, "train.max_train_steps=1", "train.prediction_type=v_prediction"]);

        var scheduler = JObject.Parse(File.ReadAllText(Path.Combine(outcome.Directory, TrainStage.PipelineFolder, "scheduler", "scheduler_config.json")));

        Assert.That(scheduler["prediction_type"]!.ToString(), Is.EqualTo("v_prediction"), "sampling the result must use the target it was trained on");
    }

    [Test]
    public void Preflight_Should_RefuseARunThatCannotFit_WithExitCode2()
    {
        using var temp = new TempFolder();
        temp.CopyTinyProfile();
        string[] sets = ["--set", "download.count=8", "--set", "model.builtin_autoencoder_steps=0", "--set", "runtime.memory_limit_gb=0.05", "--set", "train.train_batch_size=64"];
        foreach (string stage in new[] { "model", "download", "latents" })
            Assert.That(CliRunner.Sdpipe(temp.Path, null, ["run", stage, .. sets]).ExitCode, Is.EqualTo(0), stage);

        var result = CliRunner.Sdpipe(temp.Path, null, ["run", "train", .. sets]);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("estimated").And.Contain("train.gradient_checkpointing=true").And.Contain("train.train_batch_size=32"));
    }

    /// <summary>Cancels the run once the progress bar reaches a step, as a SIGTERM arriving then would.</summary>
    private sealed class StopAt(int step, CancellationTokenSource source) : IProgressSink
    {
        public IProgressTask Start(string description, double? total, ProgressUnit unit = ProgressUnit.Items) => new Task(step, source);

        private sealed class Task(int step, CancellationTokenSource source) : IProgressTask
        {
            public void Advance(double amount) { }
            public void SetTotal(double total) { }
            public void SetValue(double value) { if (value >= step) source.Cancel(); }
            public void Dispose() { }
        }
    }
}
