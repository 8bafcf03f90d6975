using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Lora;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Training.Optimization;
using SdPipeline.Weights;

namespace SdPipeline.Tests.Lora;

/// <summary>train.method=lora through the train stage on builtin:tiny and a small shapes set.</summary>
public sealed class LoraTrainingTests
{
    private static readonly string[] Small =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0", "download.count=24", "latents.resolution=64", "latents.center_crop=true",
        "train.train_batch_size=4", "train.max_train_steps=6", "train.lr_warmup_steps=0", "train.learning_rate=1e-3",
        "train.validation_steps=3", "train.checkpointing_steps=2", "train.heldout_max_items=8", "train.method=lora",
    ];

    private static BuildOutcome Train(PipelineHarness harness, string[] sets, CancellationToken cancellation = default, IProgressSink? progress = null)
    {
        harness.RunChain(["model", "download", "latents"], sets);
        return new StageExecutor(ProjectStages.Graph, harness.Store, new FileHashCache(null))
            .Run("train", PipelineHarness.Config(sets), false, line => harness.Log.Add(line), progress ?? NullProgress.Instance, cancellation);
    }

    private static Dictionary<string, byte[]> Tensors(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Entries.ToDictionary(e => e.Name, e => file.Bytes(e).ToArray());
    }

    [Test]
    public void LoraRun_Should_LowerTheHeldoutLoss_AndExportOnlyTheAdapters_InBothLayouts()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. Small, "train.max_train_steps=12", "train.validation_steps=12", "train.learning_rate=1e-2"]);

        var evals = File.ReadLines(Path.Combine(outcome.Directory, FineTuner.MetricsFile)).Select(JObject.Parse)
            .Where(j => j["kind"]!.ToString() == "eval").ToList();
        Assert.That(evals.Last()["heldout_loss"]!.Value<double>(), Is.LessThan(evals.First()["heldout_loss"]!.Value<double>()));

        var summary = outcome.Manifest.Summary;
        var lora = (JObject)summary["lora"]!;
        string folder = Path.Combine(outcome.Directory, TrainStage.LoraFolder);
        var diffusers = Tensors(Path.Combine(folder, LoraFile.DiffusersFileName));
        long adapterElements = diffusers.Values.Sum(b => (long)b.Length) / 4;
        Assert.That(summary["method"]!.ToString(), Is.EqualTo("lora"));
        Assert.That(summary["trainable_parameters"]!.Value<long>(), Is.EqualTo(adapterElements), "the count is the adapters'");
        Assert.That(summary["trainable_parameters"]!.Value<long>(), Is.LessThan(lora["base_parameters"]!.Value<long>() / 20));
        Assert.That(lora["files"]![LoraFile.DiffusersFileName]!.Value<long>(), Is.EqualTo(new FileInfo(Path.Combine(folder, LoraFile.DiffusersFileName)).Length));
        Assert.That(File.Exists(Path.Combine(folder, LoraFile.KohyaFileName)), Is.True);
        Assert.That(Directory.Exists(Path.Combine(outcome.Directory, "unet")) || Directory.Exists(Path.Combine(outcome.Directory, TrainStage.PipelineFolder)), Is.False,
            "a LoRA run exports adapters, not a copy of the frozen model");
        string checkpoint = TrainingCheckpoint.Latest(Path.Combine(outcome.Directory, FineTuner.CheckpointsFolder))!;
        Assert.That(Directory.GetFileSystemEntries(checkpoint).Select(Path.GetFileName),
            Is.EquivalentTo(new[] { LoraFile.DiffusersFileName, "training_state.safetensors", "training_state.json" }));
        Assert.That(Tensors(Path.Combine(checkpoint, "training_state.safetensors")).Keys.Where(k => k.StartsWith("exp_avg.", StringComparison.Ordinal)),
            Is.EquivalentTo(diffusers.Keys.Select(k => "exp_avg." + k)), "AdamW holds state for the adapters only");
    }

    [TestCase(0.0, Category = "Slow")]
    [TestCase(0.25, Category = "Slow")] // the dropout masks too: drawn from train.seed and the step, not from whatever the process drew before
    public void InterruptedLoraRun_Should_ResumeToTheSameAdapters_BitForBit(double dropout)
    {
        // Given an uninterrupted LoRA run with EMA
        string[] sets = [.. Small, "train.use_ema=true", $"train.lora_dropout={dropout.ToString(System.Globalization.CultureInfo.InvariantCulture)}"];
        using var straight = new PipelineHarness();
        var reference = Train(straight, sets);

        // When another is stopped after step 3 and run again
        using var interrupted = new PipelineHarness();
        using var stop = new CancellationTokenSource();
        Assert.Throws<OperationCanceledException>(() => Train(interrupted, sets, stop.Token, new StopAt(3, stop)));
        var resumed = Train(interrupted, sets);

        // Then it resumed and its adapters (the EMA's, exported) equal the uninterrupted run's
        Assert.That(interrupted.Log, Has.Some.Contains("resuming from checkpoint-000003"));
        foreach (string file in new[] { LoraFile.DiffusersFileName, LoraFile.KohyaFileName })
        {
            var expected = Tensors(Path.Combine(reference.Directory, TrainStage.LoraFolder, file));
            var actual = Tensors(Path.Combine(resumed.Directory, TrainStage.LoraFolder, file));
            Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
            foreach (var (name, bytes) in expected) Assert.That(actual[name], Is.EqualTo(bytes), name);
        }
    }

    [Test]
    public void LoraRun_Should_Train_WithAHalfPrecisionFrozenBase_UnderBf16()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. Small, "train.max_train_steps=2", "train.mixed_precision=bf16", "train.gradient_checkpointing=true", "train.lora_targets=attention,resnets"]);

        var lines = File.ReadLines(Path.Combine(outcome.Directory, FineTuner.MetricsFile)).Select(JObject.Parse).ToList();
        Assert.That(lines.Where(j => j["kind"]!.ToString() == "train").All(j => double.IsFinite(j["loss"]!.Value<double>())), Is.True);
        Assert.That(lines.Where(j => j["kind"]!.ToString() == "eval").All(j => double.IsFinite(j["heldout_loss"]!.Value<double>())), Is.True);
        var estimate = outcome.Manifest.Summary["memory_estimate"]!;
        Assert.That(estimate["optimizer_gib"]!.Value<double>(), Is.LessThan(0.01), "AdamW state for the adapters only");
    }

    [TestCase("train.lora_rank=0", "train.lora_rank")]
    [TestCase("train.lora_alpha=-1", "train.lora_alpha")]
    [TestCase("train.lora_dropout=1", "train.lora_dropout")]
    [TestCase("train.lora_targets=[]", "train.lora_targets")]
    public void Settings_Should_RejectValuesOutOfRange_NamingTheKey(string assignment, string key)
    {
        // The schema's ranges refuse rank, alpha and dropout as the profile loads; LoraSettings the empty target list.
        var error = Assert.Throws<ConfigException>(() => LoraSettings.From(ConfigLoader.Load(null, ["train.method=lora", assignment]).Typed.Train));

        Assert.That(error!.Message, Does.Contain(key));
    }

    [Test]
    public void TrainStage_Should_RefuseLoraDropout_WithGradientCheckpointing()
    {
        // A checkpointed block is recomputed in backward, where the adapters would draw new dropout masks (PyTorch's
        // checkpoint restores the RNG state; ours does not): the gradients would belong to another forward than the loss.
        static IReadOnlyList<string> Problems(params string[] sets) =>
            TrainStage.CheckConfig(ConfigLoader.Load(null, [$"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "train.method=lora", .. sets]));

        Assert.That(Problems("train.lora_dropout=0.1"), Is.Empty);
        Assert.That(Problems("train.gradient_checkpointing=true"), Is.Empty);
        Assert.That(Problems("train.lora_dropout=0.1", "train.gradient_checkpointing=true"),
            Has.One.Contains("train.lora_dropout=0").And.One.Contains("train.gradient_checkpointing=false"));
    }

    [TestCase("train.method=qlora", "train.method")]
    [TestCase("train.lora_targets=attention,mlp", "train.lora_targets")]
    [TestCase("benchmark.method=full,dora", "benchmark.method")]
    public void Config_Should_RejectUnknownValues_NamingTheKey(string assignment, string key)
    {
        var error = Assert.Throws<ConfigException>(() => ConfigLoader.Load(null, [assignment]));

        Assert.That(error!.Message, Does.Contain(key).And.Contain("is not one of"));
    }

    [Test]
    public void UnknownMethod_Should_ExitWithCode2()
    {
        var result = CliRunner.Sdpipe(RepoPaths.Root, null, ["config", "--set", "train.method=qlora"]);

        Assert.That(result.ExitCode, Is.EqualTo(2), result.All);
        Assert.That(result.Error, Does.Contain("train.method"));
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
