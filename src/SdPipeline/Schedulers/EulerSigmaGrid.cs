using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// The σ grid both Euler samplers walk (k-diffusion keeps it apart from the step rule the same way): the float
/// timesteps, σ interpolated at each, a final σ, the index of the next step, the initial noise's σ and the UNet
/// input scaling 1/√(σ² + 1). diffusers repeats these in each Euler class under "# Copied from"; here they are one.
/// </summary>
internal sealed class EulerSigmaGrid : IDisposable
{
    private readonly NoiseSchedule _schedule;
    private readonly SchedulerConfig _config;
    private readonly string _spacing;
    private Tensor? _timesteps;

    public EulerSigmaGrid(NoiseSchedule schedule, SchedulerConfig config)
    {
        _schedule = schedule;
        _config = config;
        _spacing = config.TimestepSpacing ?? "linspace";
        // Before SetTimesteps: σ for t = N−1 … 0, then 0.
        Values = [.. schedule.SigmaValues().Reverse(), 0f];
        Sigmas = tensor(Values, ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>σ at each timestep and the final σ, as floats.</summary>
    public float[] Values { get; private set; }

    /// <summary><see cref="Values"/> as a float32 tensor [n + 1].</summary>
    public Tensor Sigmas { get; private set; }

    public Tensor Timesteps => _timesteps ?? throw new InvalidOperationException("call SetTimesteps before reading Timesteps");

    /// <summary>The index of the next step into <see cref="Values"/>, or null before the first call.</summary>
    public int? StepIndex { get; set; }

    /// <summary>σ_max, or √(σ_max² + 1) under <c>leading</c> spacing, as diffusers' <c>init_noise_sigma</c>.</summary>
    public double InitNoiseSigma
    {
        get
        {
            float maxSigma = Values.Max();
            return _spacing is "linspace" or "trailing" ? maxSigma : MathF.Sqrt(maxSigma * maxSigma + 1f);
        }
    }

    /// <summary>Lays out <paramref name="numInferenceSteps"/> timesteps and their σ, ending at <paramref name="finalSigma"/>.</summary>
    public void SetTimesteps(int numInferenceSteps, float finalSigma)
    {
        SchedulerSupport.CheckStepCount(numInferenceSteps, _schedule.NumTrainTimesteps);
        float[] timesteps = SchedulerSupport.FloatTimesteps(_spacing, numInferenceSteps, _config);

        // Interpolate the float32 training sigmas at the (fractional) timesteps in float64, as np.interp does,
        // then round to float32.
        double[] table = _schedule.SigmaValues().Select(s => (double)s).ToArray();
        var sigmas = new float[timesteps.Length + 1];
        for (int i = 0; i < timesteps.Length; i++)
            sigmas[i] = (float)NumpyGrid.Interp(timesteps[i], table);
        sigmas[^1] = finalSigma;

        _timesteps?.Dispose();
        Sigmas.Dispose();
        _timesteps = tensor(timesteps, ScalarType.Float32).DetachFromDisposeScope();
        Values = sigmas;
        Sigmas = tensor(sigmas, ScalarType.Float32).DetachFromDisposeScope();
        StepIndex = null;
    }

    /// <summary>The index of the step at <paramref name="timestep"/>: the current one once sampling has begun.</summary>
    public int IndexOf(Tensor timestep) => StepIndex ??= SchedulerSupport.IndexOf(Timesteps, timestep);

    /// <summary>Divides the sample by √(σ² + 1) so the UNet sees unit variance.</summary>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep)
    {
        float sigma = Values[IndexOf(timestep)];
        return sample / MathF.Sqrt(sigma * sigma + 1f);
    }

    /// <summary>The index of the step at <paramref name="timestep"/>, checked to have a σ to move to.</summary>
    public int StepFrom(Tensor timestep)
    {
        int index = IndexOf(timestep);
        if (index + 1 >= Values.Length)
            throw new InvalidOperationException("the schedule is finished: call SetTimesteps to sample again");
        return index;
    }

    public void Dispose()
    {
        _timesteps?.Dispose();
        Sigmas.Dispose();
    }
}
