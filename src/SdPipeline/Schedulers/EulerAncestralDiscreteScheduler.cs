using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// Ancestral sampling with Euler steps (k-diffusion's <c>sample_euler_ancestral</c>): each step goes down to
/// σ_down by Euler's method, then adds fresh noise of standard deviation σ_up, where
/// σ_up = √(σ_to² (σ_from² − σ_to²) / σ_from²) and σ_down = √(σ_to² − σ_up²). Stochastic: every step draws noise.
/// </summary>
/// <remarks>
/// Mirrors diffusers' <c>EulerAncestralDiscreteScheduler</c> (git 58eb52c0). Timesteps, sigmas, the initial noise
/// and the UNet input scaling are those of <see cref="EulerDiscreteScheduler"/> with linear interpolation.
/// Every step draws one randn of the sample's shape, the last one included (where σ_up = 0), so a seeded
/// generator gives the same images as diffusers.
/// </remarks>
public sealed class EulerAncestralDiscreteScheduler : IScheduler
{
    private readonly EulerSigmaGrid _grid;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid.</exception>
    public EulerAncestralDiscreteScheduler(SchedulerConfig config)
    {
        config.Validate();
        Config = config;
        Schedule = new NoiseSchedule(config);
        _grid = new EulerSigmaGrid(Schedule, config);
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.EulerAncestral;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _grid.Timesteps;

    /// <summary>σ at each timestep and a final 0, float32 [n + 1].</summary>
    public Tensor Sigmas => _grid.Sigmas;

    /// <summary>The index of the next step into <see cref="Sigmas"/>, or null before the first call.</summary>
    public int? StepIndex => _grid.StepIndex;

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => true;

    /// <inheritdoc/>
    public double InitNoiseSigma => _grid.InitNoiseSigma;

    /// <inheritdoc/>
    public void SetTimesteps(int numInferenceSteps) => _grid.SetTimesteps(numInferenceSteps, 0f);

    /// <inheritdoc/>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => _grid.ScaleModelInput(sample, timestep);

    /// <inheritdoc/>
    public SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null)
    {
        int index = _grid.StepFrom(timestep);
        using var scope = NewDisposeScope();

        float sigma = _grid.Values[index];
        // Upcast to avoid precision issues when computing prev_sample.
        sample = sample.to_type(ScalarType.Float32);

        // 1. compute predicted original sample (x_0) from sigma-scaled predicted noise
        var predOriginalSample = Config.PredictionType switch
        {
            PredictionTypes.Epsilon => sample - sigma * modelOutput,
            // denoised = model_output * c_out + input * c_skip
            PredictionTypes.VPrediction => modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1f)) + sample / (sigma * sigma + 1f),
            _ => throw new InvalidOperationException($"prediction_type '{Config.PredictionType}'"),
        };

        // 2. split the move to σ_to into a deterministic part down to σ_down and fresh noise of σ_up
        float sigmaFrom = _grid.Values[index];
        float sigmaTo = _grid.Values[index + 1];
        float sigmaUp = MathF.Sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom));
        float sigmaDown = MathF.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);

        // 3. Convert to an ODE derivative and take the Euler step to σ_down
        var derivative = (sample - predOriginalSample) / sigma;
        float dt = sigmaDown - sigma;
        var prevSample = sample + derivative * dt;

        // 4. add the ancestral noise
        var stepNoise = SchedulerSupport.DrawNoise(modelOutput, generator, noise);
        prevSample = (prevSample + stepNoise * sigmaUp).to_type(modelOutput.dtype);

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
