using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// Denoising diffusion probabilistic models (Ho et al., arXiv:2006.11239): ancestral sampling of the posterior
/// q(x_{t−1} | x_t, x₀) with the <c>fixed_small</c> variance β̃ₜ. Stochastic: each step but the last at t = 0 draws noise.
/// </summary>
/// <remarks>
/// Mirrors diffusers' <c>DDPMScheduler</c> (git 58eb52c0). Class defaults: <c>timestep_spacing</c> <c>leading</c>,
/// <c>clip_sample</c> true, <c>variance_type</c> <c>fixed_small</c>. <see cref="Step"/> also works before
/// <see cref="SetTimesteps"/>; the previous timestep is then t − 1 (the full 1000-step chain).
/// </remarks>
public sealed class DdpmScheduler : IScheduler
{
    private readonly string _spacing;
    private readonly bool _clipSample;
    private Tensor? _timesteps;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid or selects an option this port does not implement.</exception>
    public DdpmScheduler(SchedulerConfig config)
    {
        config.Validate();
        config.Refuse(config.VarianceType is null or "fixed_small", SchedulerFactory.Ddpm, "variance_type", config.VarianceType, "fixed_small");
        config.Refuse(!config.Thresholding, SchedulerFactory.Ddpm, "thresholding", config.Thresholding, "false");
        Config = config;
        Schedule = new NoiseSchedule(config);
        _spacing = config.TimestepSpacing ?? "leading";
        _clipSample = config.ClipSample ?? true;
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.Ddpm;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _timesteps ?? throw new InvalidOperationException("call SetTimesteps before reading Timesteps");

    /// <summary>The number of inference steps of the last <see cref="SetTimesteps"/>, or null before it.</summary>
    public int? NumInferenceSteps { get; private set; }

    /// <inheritdoc/>
    public double InitNoiseSigma => 1.0;

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => true;

    /// <inheritdoc/>
    public void SetTimesteps(int numInferenceSteps)
    {
        _timesteps = SchedulerSupport.ReplaceIntegerTimesteps(_timesteps, _spacing, numInferenceSteps, Config);
        NumInferenceSteps = numInferenceSteps;
    }

    /// <inheritdoc/>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => sample.alias();

    /// <inheritdoc/>
    public SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null)
    {
        using var scope = NewDisposeScope();
        long t = SchedulerSupport.ToInt64(timestep);
        long prevT = PreviousTimestep(t, timestep);

        // 1. compute alphas, betas (float32 scalars, as diffusers' 0-d tensors)
        float alphaProdT = Schedule.AlphasCumprodValues[t];
        float alphaProdTPrev = prevT >= 0 ? Schedule.AlphasCumprodValues[prevT] : 1f;
        float betaProdT = 1f - alphaProdT;
        float betaProdTPrev = 1f - alphaProdTPrev;
        float currentAlphaT = alphaProdT / alphaProdTPrev;
        float currentBetaT = 1f - currentAlphaT;

        // 2. compute predicted original sample from predicted noise also called
        // "predicted x_0" of formula (15) from https://arxiv.org/pdf/2006.11239.pdf
        var predOriginalSample = Config.PredictionType switch
        {
            PredictionTypes.Epsilon => (sample - MathF.Sqrt(betaProdT) * modelOutput) / MathF.Sqrt(alphaProdT),
            PredictionTypes.VPrediction => MathF.Sqrt(alphaProdT) * sample - MathF.Sqrt(betaProdT) * modelOutput,
            _ => throw new InvalidOperationException($"prediction_type '{Config.PredictionType}'"),
        };

        // 3. Clip "predicted x_0"
        if (_clipSample)
            predOriginalSample = predOriginalSample.clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        // 4. Compute coefficients for pred_original_sample x_0 and current sample x_t
        // See formula (7) from https://arxiv.org/pdf/2006.11239.pdf
        float predOriginalSampleCoeff = MathF.Sqrt(alphaProdTPrev) * currentBetaT / betaProdT;
        float currentSampleCoeff = MathF.Sqrt(currentAlphaT) * betaProdTPrev / betaProdT;

        // 5. Compute predicted previous sample µ_t
        // See formula (7) from https://arxiv.org/pdf/2006.11239.pdf
        var predPrevSample = predOriginalSampleCoeff * predOriginalSample + currentSampleCoeff * sample;

        // 6. Add noise: σ_t·z with σ_t² = β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t, formulas (6) and (7)
        if (t > 0)
        {
            var varianceNoise = SchedulerSupport.DrawNoise(modelOutput, generator, noise);
            predPrevSample = predPrevSample + MathF.Sqrt(Variance(alphaProdT, alphaProdTPrev)) * varianceNoise;
        }

        return new SchedulerStepOutput(predPrevSample.MoveToOuterDisposeScope(), predOriginalSample.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _timesteps?.Dispose();
        Schedule.Dispose();
    }

    // β̃_t of formula (7), clamped away from 0 because diffusers takes its log for other variance types.
    private static float Variance(float alphaProdT, float alphaProdTPrev)
    {
        float currentBetaT = 1f - alphaProdT / alphaProdTPrev;
        float variance = (1f - alphaProdTPrev) / (1f - alphaProdT) * currentBetaT;
        return MathF.Max(variance, 1e-20f);
    }

    // The next timestep of the inference chain, −1 after the last; t − 1 before SetTimesteps.
    private long PreviousTimestep(long t, Tensor timestep)
    {
        if (_timesteps is null)
            return t - 1;
        int index = SchedulerSupport.IndexOf(_timesteps, timestep, secondOfTwo: false);
        return index == _timesteps.shape[0] - 1 ? -1 : _timesteps[index + 1].item<long>();
    }
}
