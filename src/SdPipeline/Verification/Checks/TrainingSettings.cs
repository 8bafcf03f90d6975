using System.Text.RegularExpressions;
using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

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
        if (schedule.PredictionType is not ("epsilon" or "v_prediction"))
            throw new ParityFixtureException($"prediction type '{schedule.PredictionType}': training targets are epsilon or v_prediction");

        var tracked = fixture.Setting<string[]>("tracked_parameters")
            ?? fixture.Keys.Where(k => k.StartsWith("step0.grad.", StringComparison.Ordinal)).Select(k => k["step0.grad.".Length..]).ToArray();
        var (optimizer, problem) = AdamWSettings.Parse(fixture.Setting<string>("optimizer"));
        return new TrainingSettings(schedule, fixture.Setting<double?>("snr_gamma"), tracked, optimizer, problem);
    }

    /// <summary>
    /// The loss of the training script: MSE in float32, or with min-SNR weighting
    /// <c>mean_over_batch(mean_per_sample(MSE) · w)</c> (<see cref="MinSnrWeights"/>).
    /// </summary>
    public Tensor Loss(Tensor prediction, Tensor target, Tensor timesteps, NoiseSchedule schedule)
    {
        if (SnrGamma is null)
            return nn.functional.mse_loss(prediction.to(ScalarType.Float32), target.to(ScalarType.Float32), nn.Reduction.Mean);

        var (_, weights) = MinSnrWeights(timesteps, schedule);
        var perElement = nn.functional.mse_loss(prediction.to(ScalarType.Float32), target.to(ScalarType.Float32), nn.Reduction.None);
        var perSample = perElement.mean(Enumerable.Range(1, (int)perElement.dim() - 1).Select(d => (long)d).ToArray());
        return (perSample * weights).mean();
    }

    /// <summary>SNR(t) and the min-SNR weights <c>w = min(snr, γ) / snr</c> (ε) or <c>/ (snr + 1)</c> (v) (arXiv:2303.09556).</summary>
    public (Tensor Snr, Tensor Weights) MinSnrWeights(Tensor timesteps, NoiseSchedule schedule)
    {
        double gamma = SnrGamma ?? throw new InvalidOperationException("no snr_gamma");
        var snr = schedule.ComputeSnr(timesteps);
        var clipped = torch.minimum(snr, torch.full_like(snr, gamma));
        return (snr, PredictionType == "epsilon" ? clipped / snr : clipped / (snr + 1));
    }

    [GeneratedRegex(@"prediction_type\s*=\s*['""]?(\w+)")]
    private static partial Regex PredictionTypeOverride();
}
