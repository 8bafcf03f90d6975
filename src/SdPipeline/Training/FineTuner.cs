using System.Diagnostics;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
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
        using var run = Start(resume);

        models.Unet.train();
        if (models.TrainsTextEncoder) TextEncodersTrain(true);
        if (run.ResumedFrom is null) EvaluateAndValidate(run); // the base model's held-out loss: the baseline to beat
        using (var bar = progress.Start("train steps", run.TotalSteps))
        {
            bar.SetValue(run.Step);
            while (run.Step < run.TotalSteps)
            {
                int epoch = run.Epoch;
                var batches = order.Epoch(epoch);
                using var prefetcher = new BatchPrefetcher(dataset, batches.Skip(run.BatchInEpoch));
                using var reader = prefetcher.Batches().GetEnumerator();
                while (run.Step < run.TotalSteps && run.Epoch == epoch)
                {
                    var clock = Stopwatch.StartNew();
                    var result = OptimizerStep(run, reader, batches.Count);
                    // CUDA queues AdamW and the EMA after the last sync (the gradient norm): wait for them, or the step's
                    // time leaves out its optimizer, which a full fine-tune pays far more of than a LoRA run.
                    if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
                    LogStep(run, result, clock.Elapsed.TotalSeconds, bar);

                    if ((settings.ValidationSteps > 0 && run.Step % settings.ValidationSteps == 0) || run.Step == run.TotalSteps)
                        EvaluateAndValidate(run);
                    bool interrupted = cancellation.IsCancellationRequested;
                    if ((settings.CheckpointingSteps > 0 && run.Step % settings.CheckpointingSteps == 0) || run.Step == run.TotalSteps || interrupted)
                        TrainingCheckpoint.Save(run.Checkpoints, run.Progress(), models, run.Optimizer, run.Ema, run.Generator, settings.CheckpointsTotalLimit);
                    if (interrupted)
                    {
                        log($"train: interrupted; checkpoint saved at step {run.Step}; run again to continue from it");
                        cancellation.ThrowIfCancellationRequested();
                    }
                }
            }
        }
        return Finish(run);
    }

    /// <summary>The run's state, from the run folder's last checkpoint when resuming, else from <see cref="ContinueFrom"/>, else fresh.</summary>
    private FineTuningRun Start(bool resume)
    {
        long totalSteps = TotalSteps();
        string? own = resume ? TrainingCheckpoint.Latest(Path.Combine(folder, CheckpointsFolder)) : null;
        string? latest = own ?? ContinueFrom;
        var run = new FineTuningRun(settings, models, dataset, schedule, predictionType, device, folder, totalSteps, latest);
        if (latest is not null)
            log(own is not null
                ? $"train: resuming from {Path.GetFileName(latest)} (step {run.Step} of {totalSteps})"
                : $"train: continuing from {latest} (step {run.Step} of {totalSteps})");
        return run;
    }

    /// <summary>One optimizer step: gradients accumulated over micro-batches, unscaled and clipped, then AdamW and the EMA.</summary>
    private StepResult OptimizerStep(FineTuningRun run, IEnumerator<LatentBatch> reader, int batchesInEpoch)
    {
        // The schedule advances with the optimizer steps actually taken (accelerate skips it with the step).
        double lr = run.BaseLr * LrSchedules.Multiplier(settings.LrScheduler, run.Optimizer.StepCount, settings.LrWarmupSteps, run.TotalSteps,
            settings.LrNumCycles, settings.LrPower, LrSchedules.PolynomialEndRatio(run.BaseLr));
        // train.fused_backward_pass: the parameters move inside backward (one micro-batch, no clipping, no loss scale).
        run.FusedBackward?.Begin(lr);
        // LoRA dropout draws from libtorch's global generator, which nothing else in a step reads: seeded by train.seed and
        // the step, its masks follow the seed and a resumed run draws the ones the uninterrupted run drew.
        if (settings.LoraDropout > 0) torch.random.manual_seed(unchecked(settings.Seed * 1_000_003L + run.Step));
        double lossSum = 0;
        int images = 0, micro = 0;
        for (; micro < run.Accumulation && run.BatchInEpoch < batchesInEpoch; micro++, run.BatchInEpoch++)
        {
            if (!reader.MoveNext()) throw new InvalidOperationException("the batch reader ended early");
            using var scope = torch.NewDisposeScope();
            using var batch = reader.Current;
            var (loss, count) = MicroBatch(run, batch);
            lossSum += loss;
            images += count;
        }

        // fp16: unscale first, so clipping and the logged norm see true gradients; a non-finite step is skipped
        // (the scale halves), as GradScaler does. Elsewhere a non-finite gradient stops the run.
        var scaler = run.Scaler;
        // A fused step's parameters have moved already; Finish steps the rest and measures the norm.
        // Clipping's coefficient is applied by AdamW as it reads each gradient.
        var clip = run.FusedBackward is { } fused ? new GradientClip(fused.Finish(), 1f)
            : scaler.UnscaleGradients() ? GradientNorm.Measure(run.Parameters.Select(p => p.Parameter), settings.MaxGradNorm) : GradientClip.None;
        double gradNorm = clip.Norm;
        if (!double.IsFinite(gradNorm) && !scaler.Enabled)
            throw new StageFailedException($"train: the gradient norm became {gradNorm} at step {run.Step + 1}; lower train.learning_rate (now {settings.LearningRate}) or keep train.max_grad_norm above 0");
        double scaleUsed = scaler.Scale;
        bool stepped = run.FusedBackward is not null || scaler.Step(() => run.Optimizer.Step(lr, clip.Coefficient));
        run.Optimizer.ZeroGrad();
        // As diffusers' script: the EMA steps on every synced step, one whose fp16 update was skipped too (its decay
        // counts the steps the optimizer was given).
        run.Ema?.Step(run.EmaParameters);
        if (!stepped && scaler.SkippedSteps > 50 && scaler.Scale < 1)
            throw new StageFailedException($"train: {scaler.SkippedSteps} fp16 steps were skipped for overflowing gradients and the loss scale fell to {scaler.Scale}; " +
                "use train.mixed_precision=bf16 or no, or lower train.learning_rate");
        run.Step++;
        if (run.BatchInEpoch >= batchesInEpoch) { run.Epoch++; run.BatchInEpoch = 0; }
        return new StepResult(lossSum / micro, images, gradNorm, lr, scaleUsed, stepped);
    }

    /// <summary>One micro-batch's forward and backward (inside the caller's dispose scope); returns its loss and image count.</summary>
    private (double Loss, int Images) MicroBatch(FineTuningRun run, LatentBatch batch)
    {
        // diffusers' latent_dist.sample() * scaling_factor, from the cached posterior.
        var epsilon = torch.randn(batch.Mean.shape, generator: run.Generator);
        var latents = ((batch.Mean.to(ScalarType.Float32) + batch.Std.to(ScalarType.Float32) * epsilon) * run.ScalingFactor).to(device);
        var conditioning = Condition(batch, run.Generator);
        var noised = run.Objective.Noise(latents, run.Generator);
        Tensor prediction;
        using (run.Precision.EnterAutocast())
            prediction = conditioning.Predict(models.Unet, noised.NoisyLatents, noised.Timesteps);
        var loss = run.Objective.Loss(prediction, noised.Target, noised.Timesteps);
        double value = loss.item<float>();
        if (!double.IsFinite(value) && !run.Scaler.Enabled)
            throw new StageFailedException($"train: the loss became {value} at step {run.Step + 1}; lower train.learning_rate (now {settings.LearningRate}), " +
                "keep train.max_grad_norm above 0, or try train.mixed_precision=no");
        run.Scaler.ScaleLoss(loss / run.Accumulation).backward();
        return (value, (int)latents.shape[0]);
    }

    /// <summary>What one optimizer step did, as <c>metrics.jsonl</c> records it.</summary>
    private sealed record StepResult(double Loss, int Images, double GradNorm, double Lr, double LossScale, bool Stepped);

    private void LogStep(FineTuningRun run, StepResult result, double seconds, IProgressTask bar)
    {
        if (run.Step > 1 || run.ResumedFrom is not null) run.StepTimes.Add(seconds);
        run.LastLoss = result.Loss;
        run.Metrics.Write(new JObject
        {
            ["kind"] = "train",
            ["step"] = run.Step,
            ["epoch"] = run.Epoch,
            ["loss"] = result.Loss,
            ["lr"] = result.Lr,
            ["grad_norm"] = result.GradNorm,
            ["loss_scale"] = run.Scaler.Enabled ? result.LossScale : null,
            ["skipped"] = !result.Stepped,
            ["step_time_s"] = Math.Round(seconds, 4),
            ["images_per_s"] = Math.Round(result.Images / seconds, 2),
            ["peak_memory_bytes"] = run.Memory.PeakBytes(),
            ["ema_decay"] = run.Ema?.CurrentDecay,
        });
        bar.SetStatus($"loss {result.Loss:0.0000}, lr {result.Lr:0.0e+00}");
        bar.SetValue(run.Step);
    }

    /// <summary>The held-out loss and the validation images at the current step.</summary>
    private void EvaluateAndValidate(FineTuningRun run)
    {
        run.LastHeldout = Evaluate(run.Heldout, run.Objective, run.Metrics, run.Step, run.Precision) ?? run.LastHeldout;
        Validation?.Run(run.Step, models, run.Ema, run.EmaParameters, run.Precision, run.Metrics.TensorBoard);
    }

    /// <summary>The trained weights left in the models (the EMA's when there is one) and the run's figures.</summary>
    private TrainingOutcome Finish(FineTuningRun run)
    {
        GradientCheckpointing.Remove(models.Unet);
        if (run.Ema is not null && models.Lora is null) run.Ema.CopyTo(models.Unet, "unet.");
        else run.Ema?.CopyTo(run.Parameters);
        run.StepTimes.Sort();
        return new TrainingOutcome(run.Step, run.ResumedFrom, run.LastLoss, run.LastHeldout, run.Scaler.SkippedSteps,
            run.StepTimes.Count > 0 ? run.StepTimes[run.StepTimes.Count / 2] : null, run.Memory.PeakBytes());
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
