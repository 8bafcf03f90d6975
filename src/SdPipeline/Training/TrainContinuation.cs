using SdPipeline.Config;
using SdPipeline.Pipeline;
using SdPipeline.Training.Optimization;

namespace SdPipeline.Training;

/// <summary>
/// Raising <c>train.max_train_steps</c> (or <c>train.num_train_epochs</c>) of a finished run continues it from its last
/// checkpoint instead of starting over, when that gives what the longer run from the start would: the configs differ
/// only in the step count, the earlier run is shorter, and the learning rate of each of its steps is the same under
/// either total. Every other state — weights, AdamW moments, EMA, loss scaler, the generator, the data order (a function of
/// seed and epoch) — is in the checkpoint, as it is for an interrupted run, so the continued run is the same run.
/// <c>constant</c> and <c>constant_with_warmup</c> never look at the total; <c>linear</c>, <c>cosine</c>,
/// <c>cosine_with_restarts</c> and <c>polynomial</c> decay towards it, so their earlier steps would have had other
/// rates and the run starts over (the plan says why) — unless the earlier run ended inside the warm-up, where the rate
/// does not depend on the total either.
/// </summary>
public static class TrainContinuation
{
    private const string MaxStepsKey = "train.max_train_steps";
    private const string EpochsKey = "train.num_train_epochs";

    /// <summary>The train stage's <see cref="StageDefinition.Continuation"/>.</summary>
    public static ContinuationVerdict? Judge(ContinuationCandidate candidate)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        var changed = candidate.ChangedKeys();
        if (changed.Count == 0 || changed.Any(key => key is not (MaxStepsKey or EpochsKey))) return null;
        TrainSummary summary;
        try
        {
            summary = candidate.Earlier.SummaryAs<TrainSummary>();
        }
        catch (Newtonsoft.Json.JsonException)
        {
            return null; // a summary of another shape: not a run this can read
        }

        var settings = candidate.Config.Typed.Train;
        var earlier = candidate.Earlier.Inputs().Config;
        long earlierSteps = summary.Steps;
        long earlierMax = earlier.Value<long>(MaxStepsKey), earlierEpochs = earlier.Value<long>(EpochsKey);
        long total;
        if (settings.MaxTrainSteps > 0) total = settings.MaxTrainSteps;
        else if (earlierMax <= 0 && earlierEpochs > 0 && earlierSteps % earlierEpochs == 0) total = earlierSteps / earlierEpochs * settings.NumTrainEpochs;
        else return ContinuationVerdict.StartOver(
            $"the earlier run [{ArtifactStore.Short(candidate.Earlier.Fingerprint)}] counted train.max_train_steps and this one counts epochs; set train.max_train_steps to continue it");
        if (total <= earlierSteps) return null;

        double endRatio = LrSchedules.PolynomialEndRatio(FineTuningRun.BaseRate(settings));
        for (long step = 0; step < earlierSteps; step++)
        {
            double before = LrSchedules.Multiplier(settings.LrScheduler, step, settings.LrWarmupSteps, earlierSteps, settings.LrNumCycles, settings.LrPower, endRatio);
            double now = LrSchedules.Multiplier(settings.LrScheduler, step, settings.LrWarmupSteps, total, settings.LrNumCycles, settings.LrPower, endRatio);
            if (before != now)
                return ContinuationVerdict.StartOver(
                    $"train.lr_scheduler={settings.LrScheduler} sets each step's learning rate from the total step count, so step {step + 1} of a {total}-step run " +
                    $"differs from the finished {earlierSteps}-step run [{ArtifactStore.Short(candidate.Earlier.Fingerprint)}]; " +
                    "constant and constant_with_warmup schedules continue it");
        }

        string checkpoints = Path.Combine(candidate.Folder, FineTuner.CheckpointsFolder);
        if (TrainingCheckpoint.Latest(checkpoints) != TrainingCheckpoint.Folder(checkpoints, earlierSteps))
            return ContinuationVerdict.StartOver($"the finished {earlierSteps}-step run [{ArtifactStore.Short(candidate.Earlier.Fingerprint)}] has no checkpoint at its last step");
        return ContinuationVerdict.ContinueFrom(earlierSteps, $"step {earlierSteps}");
    }

    /// <summary>
    /// Makes <paramref name="runFolder"/> the continuation of <paramref name="earlier"/> unless it holds checkpoints of its
    /// own (an interrupted continuation resumes from those): the earlier run's metrics, TensorBoard events and validation
    /// images are copied in, so the logs cover every step. Returns the checkpoint to start from, or null to resume.
    /// </summary>
    public static string? Prepare(string runFolder, StageContinuation earlier)
    {
        ArgumentNullException.ThrowIfNull(earlier);
        if (TrainingCheckpoint.Latest(Path.Combine(runFolder, FineTuner.CheckpointsFolder)) is not null) return null;
        string metrics = Path.Combine(earlier.Folder, FineTuner.MetricsFile);
        if (File.Exists(metrics)) File.Copy(metrics, Path.Combine(runFolder, FineTuner.MetricsFile), overwrite: true);
        CopyFolder(Path.Combine(earlier.Folder, TensorBoardLog.FolderName), Path.Combine(runFolder, TensorBoardLog.FolderName));
        CopyFolder(Path.Combine(earlier.Folder, ValidationImages.FolderName), Path.Combine(runFolder, ValidationImages.FolderName));
        return TrainingCheckpoint.Folder(Path.Combine(earlier.Folder, FineTuner.CheckpointsFolder), earlier.Position);
    }

    private static void CopyFolder(string source, string target)
    {
        if (!Directory.Exists(source)) return;
        Directory.CreateDirectory(target);
        foreach (string file in Directory.EnumerateFiles(source))
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)), overwrite: true);
    }
}

/// <summary>The finished run a train artifact continued (see <see cref="TrainContinuation"/>).</summary>
/// <param name="Fingerprint">The earlier train artifact's fingerprint.</param>
/// <param name="Step">The step of its checkpoint this run started from.</param>
public sealed record ContinuedRun(string Fingerprint, long Step);
