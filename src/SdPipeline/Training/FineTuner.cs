using System.Diagnostics;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Runtime;
using SdPipeline.Schedulers;
using SdPipeline.Training.Checkpointing;
using SdPipeline.Training.Optimization;
using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>What a finished (or interrupted) run reports.</summary>
/// <param name="Steps">Optimizer steps taken in total.</param>
/// <param name="ResumedFromStep">The checkpoint step it resumed from, or null.</param>
/// <param name="FinalLoss">Mean training loss of the last optimizer step.</param>
/// <param name="Heldout">The last held-out evaluation.</param>
/// <param name="SkippedSteps">fp16 steps skipped for non-finite gradients.</param>
/// <param name="MedianStepSeconds">Median optimizer-step time (warm-up step excluded).</param>
/// <param name="PeakMemoryBytes">Peak device memory seen.</param>
public sealed record TrainingOutcome(long Steps, long? ResumedFromStep, double FinalLoss, HeldoutResult? Heldout, long SkippedSteps, double? MedianStepSeconds, long? PeakMemoryBytes);

/// <summary>
/// The fine-tuning loop of diffusers' <c>train_text_to_image.py</c>, top to bottom: for each optimizer step,
/// accumulate gradients over micro-batches (latents drawn from the cached posterior, noise, uniform timesteps,
/// the objective's loss in float32), clip, step AdamW at the scheduled learning rate, update the EMA, log,
/// evaluate on the held-out split, checkpoint. Every random draw comes from one generator saved in
/// checkpoints, and the data order is a function of (seed, epoch), so a resumed run is the same run.
/// </summary>
public sealed class FineTuner(TrainSection settings, TrainedModels models, LatentDataset dataset, NoiseSchedule schedule, string predictionType,
    int clipSkip, Device device, string folder, Action<string> log, IProgressSink progress, CancellationToken cancellation)
{
    /// <summary>The metrics file inside the run folder.</summary>
    public const string MetricsFile = "metrics.jsonl";

    /// <summary>The checkpoints folder inside the run folder.</summary>
    public const string CheckpointsFolder = "checkpoints";

    /// <summary>Caption dropout and tag shuffling, when the settings ask for them (see <see cref="Training.CaptionAugmentation"/>).</summary>
    public CaptionAugmentation? CaptionAugmentation { get; init; }

    /// <summary>SDXL's conditioning (pooled embedding and time ids from the cache) for an SDXL UNet, else null.</summary>
    public SdxlConditioning? Sdxl { get; init; }

    /// <summary>The validation images (<c>train.validation_prompts</c>), or null when there are none.</summary>
    public ValidationPass? Validation { get; init; }

    /// <summary>
    /// The last checkpoint of a finished shorter run to continue from when the run folder holds no checkpoint of its own
    /// (see <see cref="TrainContinuation"/>), or null.
    /// </summary>
    public string? ContinueFrom { get; init; }

    /// <summary>Optimizer steps the run will take.</summary>
    public long TotalSteps()
    {
        int batchesPerEpoch = new BatchOrder(dataset.Rows(Data.DatasetItem.TrainSplit), settings.TrainBatchSize, settings.Seed).Epoch(0).Count;
        long stepsPerEpoch = (batchesPerEpoch + settings.GradientAccumulationSteps - 1) / settings.GradientAccumulationSteps;
        return settings.MaxTrainSteps > 0 ? settings.MaxTrainSteps : settings.NumTrainEpochs * stepsPerEpoch;
    }

    /// <summary>Runs (or resumes) the loop. Cancellation saves a checkpoint and throws <see cref="OperationCanceledException"/>.</summary>
    public TrainingOutcome Run(bool resume)
    {
        var trainRows = dataset.Rows(Data.DatasetItem.TrainSplit);
        if (trainRows.Count == 0) throw new StageFailedException("train: the latent cache has no training rows");
        var order = new BatchOrder(trainRows, settings.TrainBatchSize, settings.Seed);
        long totalSteps = TotalSteps();
        int accumulation = Math.Max(1, settings.GradientAccumulationSteps);
        double baseLr = settings.ScaleLr ? settings.LearningRate * accumulation * settings.TrainBatchSize : settings.LearningRate;
        var objective = new TrainingObjective(schedule, predictionType, settings.NoiseOffset, settings.InputPerturbation, settings.SnrGamma);
        double scalingFactor = dataset.Index.ScalingFactor;

        var parameters = models.Parameters();
        foreach (var (_, parameter) in parameters) parameter.requires_grad = true;
        // Mixed precision: float32 master weights, matmuls and convolutions in the autocast dtype (see Autocast);
        // fp16 adds dynamic loss scaling. The scaler is a pass-through for no and bf16, so there is one code path.
        var precision = MixedPrecision.Parse(settings.MixedPrecision, "train.mixed_precision");
        var scaler = DynamicLossScaler.For(precision, parameters.Select(p => p.Parameter));
        if (settings.GradientCheckpointing) GradientCheckpointing.Apply(models.Unet, models.Lora is { } network ? network.HoldsTrainableAdapter : null);
        else GradientCheckpointing.Remove(models.Unet);
        using var optimizer = new AdamW(parameters, settings.AdamBeta1, settings.AdamBeta2, settings.AdamWeightDecay, settings.AdamEpsilon);
        // A full fine-tune averages the UNet (diffusers' EMAModel(unet.parameters())); a LoRA run averages its adapters.
        var emaParameters = models.Lora is null ? parameters.Where(p => p.Name.StartsWith("unet.", StringComparison.Ordinal)).ToList() : parameters;
        using var ema = settings.UseEma
            ? new EmaModel(emaParameters,
                new EmaSettings(settings.EmaDecay, settings.EmaMinDecay, settings.EmaUpdateAfterStep, settings.EmaUseWarmup, settings.EmaInvGamma, settings.EmaPower),
                settings.EmaOnCpu ? torch.CPU : device)
            : null;
        using var generator = new torch.Generator((ulong)settings.Seed);
        using var heldout = new HeldoutEvaluator(dataset, dataset.Rows(Data.DatasetItem.HeldoutSplit), settings.HeldoutMaxItems,
            settings.TrainBatchSize, scalingFactor, schedule.NumTrainTimesteps);
        var memory = new DeviceMemory(device);

        string checkpoints = Path.Combine(folder, CheckpointsFolder);
        Directory.CreateDirectory(checkpoints);
        var position = new TrainingProgress(0, 0, 0, 0, 0, null);
        long? resumedFrom = null;
        string? own = resume ? TrainingCheckpoint.Latest(checkpoints) : null;
        if ((own ?? ContinueFrom) is { } latest)
        {
            position = TrainingCheckpoint.Load(latest, models, optimizer, ema, generator);
            if (position.LossScaler is { } state) scaler.ImportState(state.ToObject<LossScalerState>(Config.ConfigSchema.Serializer)!);
            resumedFrom = position.Step;
            log(own is not null
                ? $"train: resuming from {Path.GetFileName(latest)} (step {position.Step} of {totalSteps})"
                : $"train: continuing from {latest} (step {position.Step} of {totalSteps})");
        }
        using var metrics = new MetricsWriter(Path.Combine(folder, MetricsFile), resumedFrom is null ? 0 : position.MetricsLines);

        models.Unet.train();
        if (models.TrainsTextEncoder) TextEncodersTrain(true);
        long step = position.Step;
        int epoch = position.Epoch, batchInEpoch = position.BatchInEpoch;
        double lastLoss = double.NaN;
        HeldoutResult? lastHeldout = null;
        var stepTimes = new List<double>();
        if (resumedFrom is null)
        {
            lastHeldout = Evaluate(heldout, objective, metrics, 0, precision); // the base model's held-out loss: the baseline to beat
            Validation?.Run(0, models, ema, emaParameters, precision, metrics.TensorBoard);
        }
        var bar = progress.Start("train steps", totalSteps);
        bar.SetValue(step);
        try
        {
            while (step < totalSteps)
            {
                int currentEpoch = epoch;
                var batches = order.Epoch(epoch);
                using var prefetcher = new BatchPrefetcher(dataset, batches.Skip(batchInEpoch));
                using var reader = prefetcher.Batches().GetEnumerator();
                while (step < totalSteps && epoch == currentEpoch)
                {
                    var clock = Stopwatch.StartNew();
                    double lossSum = 0;
                    int images = 0, micro = 0;
                    for (; micro < accumulation && batchInEpoch < batches.Count; micro++, batchInEpoch++)
                    {
                        if (!reader.MoveNext()) throw new InvalidOperationException("the batch reader ended early");
                        using var scope = torch.NewDisposeScope();
                        using var batch = reader.Current;
                        // diffusers' latent_dist.sample() * scaling_factor, from the cached posterior.
                        var epsilon = torch.randn(batch.Mean.shape, generator: generator);
                        var latents = ((batch.Mean.to(ScalarType.Float32) + batch.Std.to(ScalarType.Float32) * epsilon) * scalingFactor).to(device);
                        var conditioning = Condition(batch, generator);
                        var noised = objective.Noise(latents, generator);
                        Tensor prediction;
                        using (precision.EnterAutocast())
                            prediction = conditioning.Predict(models.Unet, noised.NoisyLatents, noised.Timesteps);
                        var loss = objective.Loss(prediction, noised.Target, noised.Timesteps);
                        double value = loss.item<float>();
                        if (!double.IsFinite(value) && !scaler.Enabled)
                            throw new StageFailedException($"train: the loss became {value} at step {step + 1}; lower train.learning_rate (now {settings.LearningRate}), " +
                                "keep train.max_grad_norm above 0, or try train.mixed_precision=no");
                        scaler.ScaleLoss(loss / accumulation).backward();
                        lossSum += value;
                        images += (int)latents.shape[0];
                    }

                    // fp16: unscale first, so clipping and the logged norm see true gradients; a non-finite step is skipped
                    // (the scale halves), as GradScaler does. Elsewhere a non-finite gradient stops the run.
                    bool finite = scaler.UnscaleGradients();
                    double gradNorm = finite ? GradientNorm.ClipAndMeasure(parameters.Select(p => p.Parameter), settings.MaxGradNorm) : double.NaN;
                    if (!double.IsFinite(gradNorm) && !scaler.Enabled)
                        throw new StageFailedException($"train: the gradient norm became {gradNorm} at step {step + 1}; lower train.learning_rate (now {settings.LearningRate}) or keep train.max_grad_norm above 0");
                    // The schedule advances with the optimizer steps actually taken (accelerate skips it with the step).
                    double lr = baseLr * LrSchedules.Multiplier(settings.LrScheduler, optimizer.StepCount, settings.LrWarmupSteps, totalSteps, settings.LrNumCycles, settings.LrPower);
                    double scaleUsed = scaler.Scale;
                    bool stepped = scaler.Step(() => optimizer.Step(lr));
                    optimizer.ZeroGrad();
                    if (stepped) ema?.Step(emaParameters);
                    else if (scaler.SkippedSteps > 50 && scaler.Scale < 1)
                        throw new StageFailedException($"train: {scaler.SkippedSteps} fp16 steps were skipped for overflowing gradients and the loss scale fell to {scaler.Scale}; " +
                            "use train.mixed_precision=bf16 or no, or lower train.learning_rate");
                    step++;
                    if (batchInEpoch >= batches.Count) { epoch++; batchInEpoch = 0; }

                    double seconds = clock.Elapsed.TotalSeconds;
                    if (step > 1 || resumedFrom is not null) stepTimes.Add(seconds);
                    lastLoss = lossSum / micro;
                    metrics.Write(new JObject
                    {
                        ["kind"] = "train",
                        ["step"] = step,
                        ["epoch"] = epoch,
                        ["loss"] = lastLoss,
                        ["lr"] = lr,
                        ["grad_norm"] = gradNorm,
                        ["loss_scale"] = scaler.Enabled ? scaleUsed : null,
                        ["skipped"] = !stepped,
                        ["step_time_s"] = Math.Round(seconds, 4),
                        ["images_per_s"] = Math.Round(images / seconds, 2),
                        ["peak_memory_bytes"] = memory.PeakBytes(),
                        ["ema_decay"] = ema?.CurrentDecay,
                    });
                    bar.SetStatus($"loss {lastLoss:0.0000}, lr {lr:0.0e+00}");
                    bar.SetValue(step);

                    if ((settings.ValidationSteps > 0 && step % settings.ValidationSteps == 0) || step == totalSteps)
                    {
                        lastHeldout = Evaluate(heldout, objective, metrics, step, precision) ?? lastHeldout;
                        Validation?.Run(step, models, ema, emaParameters, precision, metrics.TensorBoard);
                    }
                    bool interrupted = cancellation.IsCancellationRequested;
                    if ((settings.CheckpointingSteps > 0 && step % settings.CheckpointingSteps == 0) || step == totalSteps || interrupted)
                        TrainingCheckpoint.Save(checkpoints, new TrainingProgress(step, epoch, batchInEpoch, metrics.Lines, ema?.OptimizationStep ?? 0,
                                scaler.Enabled ? JObject.FromObject(scaler.ExportState(), Config.ConfigSchema.Serializer) : null),
                            models, optimizer, ema, generator, settings.CheckpointsTotalLimit);
                    if (interrupted)
                    {
                        log($"train: interrupted; checkpoint saved at step {step}; run again to continue from it");
                        cancellation.ThrowIfCancellationRequested();
                    }
                }
            }
        }
        finally
        {
            bar.Dispose();
        }

        GradientCheckpointing.Remove(models.Unet);
        if (ema is not null && models.Lora is null) ema.CopyTo(models.Unet, "unet.");
        else ema?.CopyTo(parameters);
        stepTimes.Sort();
        return new TrainingOutcome(step, resumedFrom, lastLoss, lastHeldout, scaler.SkippedSteps,
            stepTimes.Count > 0 ? stepTimes[stepTimes.Count / 2] : null, memory.PeakBytes());
    }

    /// <summary>
    /// The UNet's conditioning of a batch: SDXL's from its cache, else SD's text embeddings after caption augmentation (when
    /// <paramref name="generator"/> is given: training steps, not held-out evaluations).
    /// </summary>
    private UnetConditioning Condition(LatentBatch batch, Generator? generator)
    {
        if (Sdxl is not null) return Sdxl.Condition(batch, device, generator);
        var (cachedText, inputIds) = generator is not null && CaptionAugmentation is not null
            ? CaptionAugmentation.Apply(batch, generator)
            : (batch.TextEmbeddings, batch.InputIds);
        return new UnetConditioning(Embed(cachedText.to(device), inputIds.to(device)));
    }

    private void TextEncodersTrain(bool training)
    {
        models.TextEncoder.train(training);
        models.TextEncoder2?.train(training);
    }

    /// <summary>The text conditioning: the cached embeddings, or the text encoder's when it is trained.</summary>
    private Tensor Embed(Tensor cached, Tensor inputIds) =>
        models.TrainsTextEncoder ? models.TextEncoder.Encode(inputIds, clipSkip) : cached.to(ScalarType.Float32);

    private HeldoutResult? Evaluate(HeldoutEvaluator evaluator, TrainingObjective objective, MetricsWriter metrics, long step, MixedPrecision precision)
    {
        models.Unet.eval();
        if (models.TrainsTextEncoder) TextEncodersTrain(false);
        HeldoutResult? result;
        try
        {
            result = evaluator.Evaluate(objective, (x, t, c) =>
            {
                // A half-precision frozen base runs only inside its autocast region.
                using (models.HalfPrecisionBase ? precision.EnterAutocast() : null)
                    return c.Predict(models.Unet, x, t);
            }, batch => Condition(batch, null), device);
        }
        finally
        {
            models.Unet.train();
            if (models.TrainsTextEncoder) TextEncodersTrain(true);
        }
        if (result is null) return null;
        metrics.Write(new JObject
        {
            ["kind"] = "eval",
            ["step"] = step,
            ["heldout_loss"] = result.Loss,
            ["heldout_loss_shuffled"] = result.ShuffledLoss,
            ["heldout_items"] = evaluator.Count,
        });
        log($"train: step {step}: held-out loss {result.Loss:0.0000}, with shuffled captions {result.ShuffledLoss:0.0000} (gap {result.ShuffledLoss - result.Loss:+0.0000;-0.0000;0.0000})");
        return result;
    }
}
