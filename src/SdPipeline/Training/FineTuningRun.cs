using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Runtime;
using SdPipeline.Schedulers;
using SdPipeline.Training.Checkpointing;
using SdPipeline.Training.Optimization;
using SdPipeline.Training.Precision;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// What one <see cref="FineTuner.Run"/> holds, the state nanoGPT's <c>train.py</c> keeps in its globals: the trained
/// parameters and their EMA, AdamW, the loss scaler, the one random generator, the held-out split, the metrics file,
/// and where the loop stands. Built from scratch or from a checkpoint (the run's own, or a shorter finished run's),
/// so that the loop continues exactly where the checkpoint left it.
/// </summary>
internal sealed class FineTuningRun : IDisposable
{
    /// <summary>Sets the run up; <paramref name="resumeFrom"/> is the checkpoint to load, or null to start at step 0.</summary>
    public FineTuningRun(TrainSection settings, TrainedModels models, LatentDataset dataset, NoiseSchedule schedule, string predictionType,
        Device device, string folder, long totalSteps, string? resumeFrom)
    {
        TotalSteps = totalSteps;
        Accumulation = Math.Max(1, settings.GradientAccumulationSteps);
        BaseLr = BaseRate(settings);
        Objective = new TrainingObjective(schedule, predictionType, settings.NoiseOffset, settings.InputPerturbation, settings.SnrGamma);
        ScalingFactor = dataset.Index.ScalingFactor;

        Parameters = models.Parameters();
        foreach (var (_, parameter) in Parameters) parameter.requires_grad = true;
        // Mixed precision: float32 master weights, matmuls and convolutions in the autocast dtype (see Autocast);
        // fp16 adds dynamic loss scaling. The scaler is a pass-through for no and bf16, so there is one code path.
        Precision = MixedPrecision.Parse(settings.MixedPrecision, "train.mixed_precision");
        Scaler = DynamicLossScaler.For(Precision, Parameters.Select(p => p.Parameter));
        if (settings.GradientCheckpointing) GradientCheckpointing.Apply(models.Unet, models.Lora is { } network ? network.HoldsTrainableAdapter : null);
        else GradientCheckpointing.Remove(models.Unet);
        // A full fine-tune averages the UNet (diffusers' EMAModel(unet.parameters())); a LoRA run averages its adapters.
        EmaParameters = models.Lora is null ? Parameters.Where(p => p.Name.StartsWith("unet.", StringComparison.Ordinal)).ToList() : Parameters;
        Checkpoints = Path.Combine(folder, FineTuner.CheckpointsFolder);
        try
        {
            Optimizer = new AdamW(Parameters, settings.AdamBeta1, settings.AdamBeta2, settings.AdamWeightDecay, settings.AdamEpsilon);
            FusedBackward = settings.FusedBackwardPass ? FusedBackwardPass.Attach(Optimizer, models.Modules()) : null;
            Ema = settings.UseEma
                ? new EmaModel(EmaParameters,
                    new EmaSettings(settings.EmaDecay, settings.EmaMinDecay, settings.EmaUpdateAfterStep, settings.EmaUseWarmup, settings.EmaInvGamma, settings.EmaPower),
                    settings.EmaOnCpu ? torch.CPU : device)
                : null;
            Generator = new torch.Generator((ulong)settings.Seed);
            Heldout = new HeldoutEvaluator(dataset, dataset.Rows(Data.DatasetItem.HeldoutSplit), settings.HeldoutMaxItems,
                settings.TrainBatchSize, ScalingFactor, schedule.NumTrainTimesteps);
            Memory = new DeviceMemory(device);

            Directory.CreateDirectory(Checkpoints);
            var position = new TrainingProgress(0, 0, 0, 0, 0, null);
            if (resumeFrom is not null)
            {
                position = TrainingCheckpoint.Load(resumeFrom, models, Optimizer, Ema, Generator);
                if (position.LossScaler is { } state) Scaler.ImportState(state.ToObject<LossScalerState>(ConfigSchema.Serializer)!);
                ResumedFrom = position.Step;
            }
            Metrics = new MetricsWriter(Path.Combine(folder, FineTuner.MetricsFile), ResumedFrom is null ? 0 : position.MetricsLines);
            // A run resumed at its last step takes no step: its final loss and held-out loss are the ones it recorded.
            foreach (var record in Metrics.Kept)
            {
                if (record.Value<string>("kind") == "train" && record["loss"]?.Type is JTokenType.Float or JTokenType.Integer) LastLoss = record.Value<double>("loss");
                else if (record.Value<string>("kind") == "eval" && record["heldout_loss"]?.Type is JTokenType.Float or JTokenType.Integer)
                    LastHeldout = new HeldoutResult(record.Value<double>("heldout_loss"), record.Value<double>("heldout_loss_shuffled"));
            }
            (Step, Epoch, BatchInEpoch) = (position.Step, position.Epoch, position.BatchInEpoch);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    // What the loop reads: fixed for the run.
    public long TotalSteps { get; }
    public int Accumulation { get; }
    /// <summary>The learning rate before the schedule's multiplier (scaled by batch and accumulation with <c>train.scale_lr</c>).</summary>
    public double BaseLr { get; }

    /// <summary>The learning rate the schedule multiplies: <c>train.learning_rate</c>, scaled as diffusers' <c>--scale_lr</c> when asked.</summary>
    public static double BaseRate(TrainSection settings) =>
        settings.ScaleLr ? settings.LearningRate * Math.Max(1, settings.GradientAccumulationSteps) * settings.TrainBatchSize : settings.LearningRate;
    public TrainingObjective Objective { get; }
    public double ScalingFactor { get; }
    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters { get; }
    public IReadOnlyList<(string Name, Parameter Parameter)> EmaParameters { get; }
    public MixedPrecision Precision { get; }
    public DynamicLossScaler Scaler { get; }
    public DeviceMemory Memory { get; } = null!;
    public string Checkpoints { get; }

    // What a checkpoint saves and restores (with the models).
    public AdamW Optimizer { get; } = null!;

    /// <summary>AdamW stepped inside backward (<c>train.fused_backward_pass</c>), or null when it steps after it.</summary>
    public FusedBackwardPass? FusedBackward { get; }
    public EmaModel? Ema { get; }
    /// <summary>The one generator every random draw of the run comes from.</summary>
    public Generator Generator { get; } = null!;
    public HeldoutEvaluator Heldout { get; } = null!;
    public MetricsWriter Metrics { get; } = null!;
    public long? ResumedFrom { get; }

    // Where the loop stands.
    public long Step { get; set; }
    public int Epoch { get; set; }
    public int BatchInEpoch { get; set; }
    public double LastLoss { get; set; } = double.NaN;
    public HeldoutResult? LastHeldout { get; set; }
    /// <summary>Optimizer-step times in seconds; a fresh run's first step (its warm-up) is left out.</summary>
    public List<double> StepTimes { get; } = [];

    /// <summary>Where the loop stands, as a checkpoint records it.</summary>
    public TrainingProgress Progress() =>
        new(Step, Epoch, BatchInEpoch, Metrics.Lines, Ema?.OptimizationStep ?? 0,
            Scaler.Enabled ? JObject.FromObject(Scaler.ExportState(), ConfigSchema.Serializer) : null);

    /// <inheritdoc />
    public void Dispose()
    {
        Metrics?.Dispose();
        Heldout?.Dispose();
        Generator?.Dispose();
        Ema?.Dispose();
        FusedBackward?.Dispose();
        Optimizer?.Dispose();
    }
}
