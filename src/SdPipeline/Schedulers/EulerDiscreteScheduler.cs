using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// Euler's method on the probability-flow ODE in σ (Karras et al., arXiv:2206.00364, Algorithm 2 without churn):
/// x_{i+1} = x_i + (x_i − x̂₀)/σ_i · (σ_{i+1} − σ_i), with σ = √((1 − ᾱ)/ᾱ). Deterministic.
/// </summary>
/// <remarks>
/// Mirrors diffusers' <c>EulerDiscreteScheduler</c> (git 58eb52c0) with linear interpolation, discrete timesteps
/// and s_churn = 0. Class default <c>timestep_spacing</c> is <c>linspace</c>, so timesteps are fractional
/// (999.0, 978.61…, …, 0.0) and the sigmas are interpolated at them, then a final 0 is appended.
/// The UNet input is divided by √(σ² + 1); the initial noise is σ_max (√(σ_max² + 1) under <c>leading</c> spacing).
/// </remarks>
public sealed class EulerDiscreteScheduler : IScheduler
{
    private readonly EulerSigmaGrid _grid;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid or selects an option this port does not implement.</exception>
    public EulerDiscreteScheduler(SchedulerConfig config)
    {
        config.Validate();
        string name = SchedulerFactory.Euler;
        config.Refuse(config.InterpolationType == "linear", name, "interpolation_type", config.InterpolationType, "'linear'");
        config.Refuse(config.TimestepType == "discrete", name, "timestep_type", config.TimestepType, "'discrete'");
        config.Refuse(!config.UseKarrasSigmas, name, "use_karras_sigmas", config.UseKarrasSigmas, "false");
        config.Refuse(!config.UseExponentialSigmas, name, "use_exponential_sigmas", config.UseExponentialSigmas, "false");
        config.Refuse(!config.UseBetaSigmas, name, "use_beta_sigmas", config.UseBetaSigmas, "false");
        config.Refuse(config.FinalSigmasType is "zero" or "sigma_min", name, "final_sigmas_type", config.FinalSigmasType, "'zero', 'sigma_min'");
        Config = config;
        Schedule = new NoiseSchedule(config);
        _grid = new EulerSigmaGrid(Schedule, config);
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.Euler;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _grid.Timesteps;

    /// <summary>σ at each timestep and a final σ (0, or σ₀ with <c>final_sigmas_type</c> <c>sigma_min</c>), float32 [n + 1].</summary>
    public Tensor Sigmas => _grid.Sigmas;

    /// <summary>The index of the next step into <see cref="Sigmas"/>, or null before the first call.</summary>
    public int? StepIndex => _grid.StepIndex;

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => false;

    /// <inheritdoc/>
    public double InitNoiseSigma => _grid.InitNoiseSigma;

    /// <inheritdoc/>
    public void SetTimesteps(int numInferenceSteps) => _grid.SetTimesteps(numInferenceSteps, Config.FinalSigmasType == "sigma_min" ? Schedule.SigmaValues()[0] : 0f);

    /// <inheritdoc/>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => _grid.ScaleModelInput(sample, timestep);

    /// <inheritdoc/>
    public SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null)
    {
        int index = _grid.StepFrom(timestep);
        using var scope = NewDisposeScope();

        // Upcast to avoid precision issues when computing prev_sample.
        sample = sample.to_type(ScalarType.Float32);
        float sigma = _grid.Values[index];
        // s_churn = 0: no noise is added, γ = 0 and σ̂ = σ·(γ + 1) = σ.
        float sigmaHat = sigma;

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise
        var predOriginalSample = Config.PredictionType switch
        {
            PredictionTypes.Epsilon => sample - sigmaHat * modelOutput,
            // denoised = model_output * c_out + input * c_skip
            PredictionTypes.VPrediction => modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1f)) + sample / (sigma * sigma + 1f),
            _ => throw new InvalidOperationException($"prediction_type '{Config.PredictionType}'"),
        };

        // 2. Convert to an ODE derivative
        var derivative = (sample - predOriginalSample) / sigmaHat;
        float dt = _grid.Values[index + 1] - sigmaHat;
        var prevSample = (sample + derivative * dt).to_type(modelOutput.dtype);

        // upon completion increase step index by one
        _grid.StepIndex = index + 1;
        return new SchedulerStepOutput(prevSample.MoveToOuterDisposeScope(), predOriginalSample.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _grid.Dispose();
        Schedule.Dispose();
    }
}
