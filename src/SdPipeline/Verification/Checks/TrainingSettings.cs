using System.Text.RegularExpressions;
using SdPipeline.Schedulers;
using SdPipeline.Training;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// What a <c>train_step_*</c> sidecar says about the step it recorded (diffusers' <c>train_text_to_image.py</c>):
/// the noise schedule and prediction type, min-SNR γ, the tracked parameters and the optimizer.
/// </summary>
internal sealed partial record TrainingSettings(SchedulerConfig Schedule, double? SnrGamma, IReadOnlyList<string> Tracked, AdamWSettings? Optimizer, string? OptimizerProblem)
{
    public string PredictionType => Schedule.PredictionType;

    public static TrainingSettings Read(ParityFixture fixture, ModelComponents model)
    {
        // "DDPMScheduler.from_config(scheduler/scheduler_config.json), prediction_type=v_prediction": the model's schedule, maybe overridden.
        var schedule = model.SchedulerConfig;
        string noiseScheduler = fixture.Setting<string>("noise_scheduler") ?? "";
        if (PredictionTypeOverride().Match(noiseScheduler) is { Success: true } match)
            schedule = schedule with { PredictionType = match.Groups[1].Value };
        if (schedule.PredictionType is not (PredictionTypes.Epsilon or PredictionTypes.VPrediction))
            throw new ParityFixtureException($"prediction type '{schedule.PredictionType}': training targets are epsilon or v_prediction");

        var tracked = fixture.Setting<string[]>("tracked_parameters")
            ?? fixture.Keys.Where(k => k.StartsWith("step0.grad.", StringComparison.Ordinal)).Select(k => k["step0.grad.".Length..]).ToArray();
        var (optimizer, problem) = AdamWSettings.Parse(fixture.Setting<string>("optimizer"));
        return new TrainingSettings(schedule, fixture.Setting<double?>("snr_gamma"), tracked, optimizer, problem);
    }

    /// <summary>
    /// The trainer's own objective with the recorded prediction type and min-SNR γ: what is checked is the code
    /// that trains, not a copy of its formulas.
    /// </summary>
    public TrainingObjective Objective(NoiseSchedule schedule) => new(schedule, PredictionType, snrGamma: SnrGamma ?? 0);

    [GeneratedRegex(@"prediction_type\s*=\s*['""]?(\w+)")]
    private static partial Regex PredictionTypeOverride();
}
