using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// DPM-Solver++ (Lu et al., arXiv:2211.01095), multistep, in data-prediction form: integrates the diffusion ODE in
/// λ = log(α/σ) using the model's x₀ predictions; order 2 (DPM-Solver++(2M)) reuses the previous x₀ for a
/// second-order correction. Deterministic.
/// </summary>
/// <remarks>
/// Mirrors diffusers' <c>DPMSolverMultistepScheduler</c> (git 58eb52c0) for <c>algorithm_type</c> <c>dpmsolver++</c>,
/// <c>solver_order</c> 1 or 2, <c>solver_type</c> <c>midpoint</c>. Class default <c>timestep_spacing</c>
/// is <c>linspace</c>: n + 1 points from 0 to N − 1, rounded, the 0 dropped (10 steps: 999, 899, …, 100).
/// The first step is first order (no history yet); so is the last when <c>final_sigmas_type</c> is <c>zero</c>,
/// when <c>euler_at_final</c> is set, or with <c>lower_order_final</c> and fewer than 15 steps.
/// The step coefficients are float32 scalars computed as diffusers computes its 0-d CPU tensors: λ = log α − log σ
/// (glibc's logf; PyTorch's SLEEF logf agrees on every reference step) and e^{−h} by PyTorch's own exp (<see cref="SleefExp"/>).
/// </remarks>
public sealed class DpmSolverMultistepScheduler : IScheduler
{
    private readonly string _spacing;
    private readonly Tensor?[] _modelOutputs;
    private Tensor? _timesteps;
    private Tensor? _sigmas;
    private float[] _sigmaValues = [];
    private int _lowerOrderNums;
    private int? _stepIndex;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid or selects an option this port does not implement.</exception>
    public DpmSolverMultistepScheduler(SchedulerConfig config)
    {
        config.Validate();
        string name = SchedulerFactory.DpmSolverPlusPlus;
        config.Refuse(config.AlgorithmType == "dpmsolver++", name, "algorithm_type", config.AlgorithmType, "'dpmsolver++'");
        config.Refuse(config.SolverOrder is 1 or 2, name, "solver_order", config.SolverOrder, "1, 2");
        // diffusers maps the UniPC/DEIS solver names onto midpoint.
        config.Refuse(config.SolverType is "midpoint" or "logrho" or "bh1" or "bh2", name, "solver_type", config.SolverType, "'midpoint'");
        config.Refuse(config.FinalSigmasType is "zero" or "sigma_min", name, "final_sigmas_type", config.FinalSigmasType, "'zero', 'sigma_min'");
        config.Refuse(!config.Thresholding, name, "thresholding", config.Thresholding, "false");
        config.Refuse(!config.UseKarrasSigmas, name, "use_karras_sigmas", config.UseKarrasSigmas, "false");
        config.Refuse(!config.UseExponentialSigmas, name, "use_exponential_sigmas", config.UseExponentialSigmas, "false");
        config.Refuse(!config.UseBetaSigmas, name, "use_beta_sigmas", config.UseBetaSigmas, "false");
        config.Refuse(!config.UseLuLambdas, name, "use_lu_lambdas", config.UseLuLambdas, "false");
        config.Refuse(!config.UseFlowSigmas, name, "use_flow_sigmas", config.UseFlowSigmas, "false");
        config.Refuse(!config.UseDynamicShifting, name, "use_dynamic_shifting", config.UseDynamicShifting, "false");
        config.Refuse(config.VarianceType is not ("learned" or "learned_range"), name, "variance_type", config.VarianceType, "null (a model that predicts its variance is not supported)");
        Config = config;
        Schedule = new NoiseSchedule(config);
        _spacing = config.TimestepSpacing ?? "linspace";
        _modelOutputs = new Tensor?[config.SolverOrder];
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.DpmSolverPlusPlus;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _timesteps ?? throw new InvalidOperationException("call SetTimesteps before reading Timesteps");

    /// <summary>σ at each timestep and the final σ (0 by default), float32 [n + 1]; available after <see cref="SetTimesteps"/>.</summary>
    public Tensor Sigmas => _sigmas ?? throw new InvalidOperationException("call SetTimesteps before reading Sigmas");

    /// <summary>The index of the next step into <see cref="Sigmas"/>, or null before the first call.</summary>
    public int? StepIndex => _stepIndex;

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => false;

    /// <inheritdoc/>
    public double InitNoiseSigma => 1.0;

    /// <inheritdoc/>
    public void SetTimesteps(int numInferenceSteps)
    {
        int trainSteps = Schedule.NumTrainTimesteps;
        SchedulerSupport.CheckStepCount(numInferenceSteps, trainSteps);
        int n = numInferenceSteps;

        // Clipping the minimum of all λ(t) = log α_t − log σ_t for numerical stability (critical for the cosine
        // schedule): torch.searchsorted(flip(λ), lambda_min_clipped) counts the λ below the bound.
        int clippedIndex = Schedule.AlphasCumprodValues
            .Select(a => (double)(MathF.Log(MathF.Sqrt(a)) - MathF.Log(MathF.Sqrt(1f - a))))
            .Count(lambda => lambda < Config.LambdaMinClipped);
        int lastTimestep = trainSteps - clippedIndex;
        float[] trainingSigmas = Schedule.SigmaValues();
        double[] table = trainingSigmas.Select(s => (double)s).ToArray();

        // "linspace", "leading", "trailing" corresponds to annotation of Table 2. of https://arxiv.org/abs/2305.08891
        long[] timesteps = _spacing switch
        {
            "linspace" => NumpyGrid.Linspace(0, lastTimestep - 1, n + 1).Select(t => (long)NumpyGrid.Round(t)).Reverse().SkipLast(1).ToArray(),
            "leading" => Enumerable.Range(0, n + 1).Select(i => (long)i * (lastTimestep / (n + 1))).Reverse().SkipLast(1).Select(t => t + Config.StepsOffset).ToArray(),
            "trailing" => NumpyGrid.Arange(lastTimestep, 0, -(double)trainSteps / n).Select(t => (long)NumpyGrid.Round(t) - 1).ToArray(),
            _ => throw new ArgumentException($"timestep_spacing '{_spacing}' is not supported"),
        };
        SchedulerSupport.CheckRange(timesteps.Select(t => (double)t), _spacing, n, Config);

        var sigmas = new float[timesteps.Length + 1];
        for (int i = 0; i < timesteps.Length; i++)
            sigmas[i] = (float)NumpyGrid.Interp(timesteps[i], table);
        sigmas[^1] = Config.FinalSigmasType == "sigma_min" ? trainingSigmas[0] : 0f;

        _timesteps?.Dispose();
        _sigmas?.Dispose();
        _timesteps = tensor(timesteps, ScalarType.Int64).DetachFromDisposeScope();
        _sigmas = tensor(sigmas, ScalarType.Float32).DetachFromDisposeScope();
        _sigmaValues = sigmas;
        NumInferenceSteps = timesteps.Length;
        ResetHistory();
    }

    /// <summary>The number of steps the last <see cref="SetTimesteps"/> scheduled, or null before it.</summary>
    public int? NumInferenceSteps { get; private set; }

    /// <inheritdoc/>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => sample.alias();

    /// <inheritdoc/>
    public SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null)
    {
        int steps = NumInferenceSteps ?? throw new InvalidOperationException("call SetTimesteps before Step");
        _stepIndex ??= SchedulerSupport.IndexOf(Timesteps, timestep);
        int index = _stepIndex.Value;
        if (index >= steps)
            throw new InvalidOperationException("the schedule is finished: call SetTimesteps to sample again");
        using var scope = NewDisposeScope();

        // Improve numerical stability for small number of steps
        bool lowerOrderFinal = index == steps - 1
            && (Config.EulerAtFinal || (Config.LowerOrderFinal && steps < 15) || Config.FinalSigmasType == "zero");

        var x0Pred = ConvertModelOutput(modelOutput, sample, index);
        _modelOutputs[0]?.Dispose();
        for (int i = 0; i < _modelOutputs.Length - 1; i++)
            _modelOutputs[i] = _modelOutputs[i + 1];
        _modelOutputs[^1] = x0Pred.DetachFromDisposeScope();

        // Upcast to avoid precision issues when computing prev_sample
        sample = sample.to_type(ScalarType.Float32);

        Tensor prevSample = Config.SolverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal
            ? FirstOrderUpdate(x0Pred, sample, index)
            : SecondOrderUpdate(sample, index);

        if (_lowerOrderNums < Config.SolverOrder)
            _lowerOrderNums++;

        prevSample = prevSample.to_type(x0Pred.dtype);
        // upon completion increase step index by one
        _stepIndex = index + 1;
        return new SchedulerStepOutput(prevSample.MoveToOuterDisposeScope(), null);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ResetHistory();
        _timesteps?.Dispose();
        _sigmas?.Dispose();
        Schedule.Dispose();
    }

    // DPM-Solver++ solves for the data prediction: x̂₀ = (x_t − σ_t ε̂) / α_t, or α_t x_t − σ_t v̂.
    private Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, int index)
    {
        var (alphaT, sigmaT) = AlphaSigma(_sigmaValues[index]);
        return Config.PredictionType switch
        {
            PredictionTypes.Epsilon => (sample - sigmaT * modelOutput) / alphaT,
            PredictionTypes.VPrediction => alphaT * sample - sigmaT * modelOutput,
            _ => throw new InvalidOperationException($"prediction_type '{Config.PredictionType}'"),
        };
    }

    // One step of DPM-Solver++(1) (equivalent to DDIM), equation (5) of arXiv:2211.01095.
    private Tensor FirstOrderUpdate(Tensor x0Pred, Tensor sample, int index)
    {
        var (alphaT, sigmaT) = AlphaSigma(_sigmaValues[index + 1]);
        var (alphaS, sigmaS) = AlphaSigma(_sigmaValues[index]);
        float lambdaT = MathF.Log(alphaT) - MathF.Log(sigmaT);
        float lambdaS = MathF.Log(alphaS) - MathF.Log(sigmaS);

        float h = lambdaT - lambdaS;
        return sigmaT / sigmaS * sample - alphaT * (SleefExp.Exp(-h) - 1f) * x0Pred;
    }

    // One step of the multistep DPM-Solver++(2M), Algorithm 2 of arXiv:2211.01095.
    private Tensor SecondOrderUpdate(Tensor sample, int index)
    {
        var (alphaT, sigmaT) = AlphaSigma(_sigmaValues[index + 1]);
        var (alphaS0, sigmaS0) = AlphaSigma(_sigmaValues[index]);
        var (alphaS1, sigmaS1) = AlphaSigma(_sigmaValues[index - 1]);

        float lambdaT = MathF.Log(alphaT) - MathF.Log(sigmaT);
        float lambdaS0 = MathF.Log(alphaS0) - MathF.Log(sigmaS0);
        float lambdaS1 = MathF.Log(alphaS1) - MathF.Log(sigmaS1);

        var m0 = _modelOutputs[^1]!;
        var m1 = _modelOutputs[^2]!;

        float h = lambdaT - lambdaS0;
        float h0 = lambdaS0 - lambdaS1;
        float r0 = h0 / h;
        var d0 = m0;
        var d1 = 1f / r0 * (m0 - m1);
        // See https://arxiv.org/abs/2211.01095 for detailed derivations
        float expMinusHMinusOne = SleefExp.Exp(-h) - 1f;
        return sigmaT / sigmaS0 * sample - alphaT * expMinusHMinusOne * d0 - 0.5f * (alphaT * expMinusHMinusOne) * d1;
    }

    // α_t = 1/√(σ² + 1) and σ_t = σ·α_t of the variance-preserving process, from the VE sigma σ = √((1 − ᾱ)/ᾱ).
    private static (float Alpha, float Sigma) AlphaSigma(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        return (alpha, sigma * alpha);
    }

    private void ResetHistory()
    {
        for (int i = 0; i < _modelOutputs.Length; i++)
        {
            _modelOutputs[i]?.Dispose();
            _modelOutputs[i] = null;
        }
        _lowerOrderNums = 0;
        _stepIndex = null;
    }
}
