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
    private readonly string _spacing;
    private float[] _sigmaValues;
    private Tensor _sigmas;
    private Tensor? _timesteps;
    private int? _stepIndex;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid.</exception>
    public EulerAncestralDiscreteScheduler(SchedulerConfig config)
    {
        config.Validate();
        Config = config;
        Schedule = new NoiseSchedule(config);
        _spacing = config.TimestepSpacing ?? "linspace";

        // Before SetTimesteps: σ for t = N−1 … 0, then 0.
        _sigmaValues = [.. Schedule.SigmaValues().Reverse(), 0f];
        _sigmas = tensor(_sigmaValues, ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.EulerAncestral;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _timesteps ?? throw new InvalidOperationException("call SetTimesteps before reading Timesteps");

    /// <summary>σ at each timestep and a final 0, float32 [n + 1].</summary>
    public Tensor Sigmas => _sigmas;

    /// <summary>The index of the next step into <see cref="Sigmas"/>, or null before the first call.</summary>
    public int? StepIndex => _stepIndex;

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => true;

    /// <inheritdoc/>
    // Copied from EulerDiscreteScheduler.InitNoiseSigma (diffusers marks the same copy with "# Copied from").
    public double InitNoiseSigma
    {
        get
        {
            float maxSigma = _sigmaValues.Max();
            return _spacing is "linspace" or "trailing" ? maxSigma : MathF.Sqrt(maxSigma * maxSigma + 1f);
        }
    }

    /// <inheritdoc/>
    // Copied from EulerDiscreteScheduler.SetTimesteps, without final_sigmas_type (the ancestral sampler ends at σ = 0).
    public void SetTimesteps(int numInferenceSteps)
    {
        SchedulerSupport.CheckStepCount(numInferenceSteps, Schedule.NumTrainTimesteps);
        float[] timesteps = SchedulerSupport.FloatTimesteps(_spacing, numInferenceSteps, Config);

        // np.interp of the float32 training sigmas at the timesteps, in float64, then float32.
        double[] table = Schedule.SigmaValues().Select(s => (double)s).ToArray();
        var sigmas = new float[timesteps.Length + 1];
        for (int i = 0; i < timesteps.Length; i++)
            sigmas[i] = (float)NumpyGrid.Interp(timesteps[i], table);

        _timesteps?.Dispose();
        _sigmas.Dispose();
        _timesteps = tensor(timesteps, ScalarType.Float32).DetachFromDisposeScope();
        _sigmaValues = sigmas;
        _sigmas = tensor(sigmas, ScalarType.Float32).DetachFromDisposeScope();
        _stepIndex = null;
    }

    /// <inheritdoc/>
    // Copied from EulerDiscreteScheduler.ScaleModelInput.
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep)
    {
        _stepIndex ??= SchedulerSupport.IndexOf(Timesteps, timestep);
        float sigma = _sigmaValues[_stepIndex.Value];
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <inheritdoc/>
    public SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null)
    {
        _stepIndex ??= SchedulerSupport.IndexOf(Timesteps, timestep);
        int index = _stepIndex.Value;
        if (index + 1 >= _sigmaValues.Length)
            throw new InvalidOperationException("the schedule is finished: call SetTimesteps to sample again");
        using var scope = NewDisposeScope();

        float sigma = _sigmaValues[index];
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
        float sigmaFrom = _sigmaValues[index];
        float sigmaTo = _sigmaValues[index + 1];
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
        _stepIndex = index + 1;
        return new SchedulerStepOutput(prevSample.MoveToOuterDisposeScope(), predOriginalSample.MoveToOuterDisposeScope());
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _timesteps?.Dispose();
        _sigmas.Dispose();
        Schedule.Dispose();
    }
}
