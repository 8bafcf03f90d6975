using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// Denoising diffusion implicit models (Song et al., arXiv:2010.02502): the non-Markovian sampler of formula (12),
/// deterministic for η = 0 (the default), with σₜ(η) of formula (16) otherwise.
/// </summary>
/// <remarks>
/// Mirrors diffusers' <c>DDIMScheduler</c> (git 58eb52c0). Class defaults: <c>timestep_spacing</c> <c>leading</c>,
/// <c>clip_sample</c> true, <c>set_alpha_to_one</c> true; SD 1.5's config sets both false, so its last step
/// (t = 1 → −19) uses ᾱ₀. The previous timestep is always t − ⌊N/n⌋, whatever the spacing, as in diffusers.
/// </remarks>
public sealed class DdimScheduler : IScheduler
{
    private readonly string _spacing;
    private readonly bool _clipSample;
    // ᾱ used for the step past t = 0.
    private readonly float _finalAlphaCumprod;
    private Tensor? _timesteps;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <param name="config">The scheduler config.</param>
    /// <param name="eta">η of formula (16): 0 is deterministic DDIM, 1 gives DDPM's posterior variance.</param>
    /// <exception cref="SchedulerConfigException">The config is invalid or selects an option this port does not implement.</exception>
    public DdimScheduler(SchedulerConfig config, double eta = 0.0)
    {
        config.Validate();
        config.Refuse(!config.Thresholding, SchedulerFactory.Ddim, "thresholding", config.Thresholding, "false");
        if (eta < 0 || double.IsNaN(eta))
            throw new ArgumentOutOfRangeException(nameof(eta), eta, "η must be 0 (deterministic) or positive");
        Config = config;
        Eta = eta;
        Schedule = new NoiseSchedule(config);
        _spacing = config.TimestepSpacing ?? "leading";
        _clipSample = config.ClipSample ?? true;
        // At every step DDIM looks at the previous ᾱ; past t = 0 there is none: `set_alpha_to_one`
        // decides whether it is 1 or ᾱ₀.
        _finalAlphaCumprod = config.SetAlphaToOne ?? true ? 1f : Schedule.AlphasCumprodValues[0];
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.Ddim;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <summary>η, the weight of the noise added at each step (0 = deterministic).</summary>
    public double Eta { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _timesteps ?? throw new InvalidOperationException("call SetTimesteps before reading Timesteps");

    /// <summary>The number of inference steps of the last <see cref="SetTimesteps"/>, or null before it.</summary>
    public int? NumInferenceSteps { get; private set; }

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => Eta > 0;

    /// <inheritdoc/>
    public double InitNoiseSigma => 1.0;

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
        int n = NumInferenceSteps ?? throw new InvalidOperationException("call SetTimesteps before Step");
        using var scope = NewDisposeScope();

        // See formulas (12) and (16) of DDIM paper https://arxiv.org/pdf/2010.02502.pdf
        // Notation (<variable name> -> <name in paper>
        // - pred_noise_t -> e_theta(x_t, t)
        // - pred_original_sample -> f_theta(x_t, t) or x_0
        // - std_dev_t -> sigma_t
        // - eta -> η
        // - pred_sample_direction -> "direction pointing to x_t"
        // - pred_prev_sample -> "x_t-1"

        // 1. get previous step value (=t-1)
        long t = SchedulerSupport.ToInt64(timestep);
        long prevTimestep = t - Schedule.NumTrainTimesteps / n;

        // 2. compute alphas, betas (float32 scalars, as diffusers' 0-d tensors)
        float alphaProdT = Schedule.AlphasCumprodValues[t];
        float alphaProdTPrev = prevTimestep >= 0 ? Schedule.AlphasCumprodValues[prevTimestep] : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;

        // 3. compute predicted original sample from predicted noise also called
        // "predicted x_0" of formula (12) from https://arxiv.org/pdf/2010.02502.pdf
        Tensor predOriginalSample, predEpsilon;
        switch (Config.PredictionType)
        {
            case PredictionTypes.Epsilon:
                predOriginalSample = (sample - MathF.Sqrt(betaProdT) * modelOutput) / MathF.Sqrt(alphaProdT);
                predEpsilon = modelOutput;
                break;
            case PredictionTypes.VPrediction:
                predOriginalSample = MathF.Sqrt(alphaProdT) * sample - MathF.Sqrt(betaProdT) * modelOutput;
                predEpsilon = MathF.Sqrt(alphaProdT) * modelOutput + MathF.Sqrt(betaProdT) * sample;
                break;
            default:
                throw new InvalidOperationException($"prediction_type '{Config.PredictionType}'");
        }

        // 4. Clip "predicted x_0"
        if (_clipSample)
            predOriginalSample = predOriginalSample.clamp(-Config.ClipSampleRange, Config.ClipSampleRange);

        // 5. compute variance: "sigma_t(η)" -> see formula (16)
        // σ_t = sqrt((1 − α_t−1)/(1 − α_t)) * sqrt(1 − α_t/α_t−1)
        float variance = Variance(alphaProdT, alphaProdTPrev);
        float stdDevT = (float)Eta * MathF.Sqrt(variance);

        // 6. compute "direction pointing to x_t" of formula (12) from https://arxiv.org/pdf/2010.02502.pdf
        var predSampleDirection = MathF.Sqrt(1f - alphaProdTPrev - stdDevT * stdDevT) * predEpsilon;

        // 7. compute x_t without "random noise" of formula (12) from https://arxiv.org/pdf/2010.02502.pdf
        var prevSample = MathF.Sqrt(alphaProdTPrev) * predOriginalSample + predSampleDirection;

        if (Eta > 0)
        {
            var varianceNoise = SchedulerSupport.DrawNoise(modelOutput, generator, noise);
            prevSample = prevSample + stdDevT * varianceNoise;
        }

        return new SchedulerStepOutput(prevSample.MoveToOuterDisposeScope(), predOriginalSample.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _timesteps?.Dispose();
        Schedule.Dispose();
    }

    private static float Variance(float alphaProdT, float alphaProdTPrev)
    {
        float betaProdT = 1f - alphaProdT;
        float betaProdTPrev = 1f - alphaProdTPrev;
        return betaProdTPrev / betaProdT * (1f - alphaProdT / alphaProdTPrev);
    }
}
