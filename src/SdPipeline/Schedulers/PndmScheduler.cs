using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Schedulers;

/// <summary>
/// Pseudo numerical methods for diffusion models (Liu et al., arXiv:2202.09778) in its PLMS form (linear multistep,
/// <c>skip_prk_steps</c>), the scheduler SD 1.5 ships: a 4th-order Adams–Bashforth combination of past ε predictions
/// pushed through the transfer of formula (9). Deterministic.
/// </summary>
/// <remarks>
/// Mirrors diffusers' <c>PNDMScheduler</c> (git 58eb52c0), PLMS path (crowsonkb's PLMS sampler,
/// CompVis/latent-diffusion#51). There is no ε history at the start, so the second timestep is visited twice
/// (50 steps: 981, 961, 961, 941, …): the first call takes a first-order step and remembers x_t; the second
/// re-evaluates at the step's end and redoes the step from the remembered x_t with the mean of the two ε (a Heun-like
/// warm-up).
/// The Runge–Kutta warm-up (<c>skip_prk_steps</c> false, the class default) is not implemented.
/// </remarks>
public sealed class PndmScheduler : IScheduler
{
    private readonly string _spacing;
    // ᾱ used for the step past t = 0.
    private readonly float _finalAlphaCumprod;
    private readonly List<Tensor> _ets = [];
    private Tensor? _curSample;
    private Tensor? _timesteps;
    private int _counter;

    /// <summary>Builds the scheduler's tables from <paramref name="config"/>.</summary>
    /// <exception cref="SchedulerConfigException">The config is invalid or asks for the Runge–Kutta warm-up.</exception>
    public PndmScheduler(SchedulerConfig config)
    {
        config.Validate();
        config.Refuse(config.SkipPrkSteps == true, SchedulerFactory.Pndm, "skip_prk_steps", config.SkipPrkSteps ?? false,
            "true, the PLMS sampler; an absent key means diffusers' default, false, the Runge–Kutta warm-up");
        Config = config;
        Schedule = new NoiseSchedule(config);
        _spacing = config.TimestepSpacing ?? "leading";
        _finalAlphaCumprod = config.SetAlphaToOne ?? false ? 1f : Schedule.AlphasCumprodValues[0];
    }

    /// <inheritdoc/>
    public string Name => SchedulerFactory.Pndm;

    /// <inheritdoc/>
    public SchedulerConfig Config { get; }

    /// <inheritdoc/>
    public NoiseSchedule Schedule { get; }

    /// <inheritdoc/>
    public Tensor Timesteps => _timesteps ?? throw new InvalidOperationException("call SetTimesteps before reading Timesteps");

    /// <summary>The number of inference steps of the last <see cref="SetTimesteps"/> (one fewer than <see cref="Timesteps"/> holds), or null before it.</summary>
    public int? NumInferenceSteps { get; private set; }

    /// <inheritdoc/>
    public bool DrawsNoiseEachStep => false;

    /// <inheritdoc/>
    public double InitNoiseSigma => 1.0;

    /// <inheritdoc/>
    public void SetTimesteps(int numInferenceSteps)
    {
        SchedulerSupport.CheckStepCount(numInferenceSteps, Schedule.NumTrainTimesteps);
        long[] descending = SchedulerSupport.IntegerTimesteps(_spacing, numInferenceSteps, Config);
        // PLMS order: the second timestep repeats (the warm-up's two calls), e.g. 901, 801, 801, 701, …, 1.
        var plms = new List<long> { descending[0] };
        if (descending.Length > 1)
            plms.Add(descending[1]);
        plms.AddRange(descending.Skip(1));

        _timesteps?.Dispose();
        _timesteps = tensor(plms.ToArray(), ScalarType.Int64).DetachFromDisposeScope();
        NumInferenceSteps = numInferenceSteps;
        ResetHistory();
    }

    /// <inheritdoc/>
    public Tensor ScaleModelInput(Tensor sample, Tensor timestep) => sample.alias();

    /// <inheritdoc/>
    public SchedulerStepOutput Step(Tensor modelOutput, Tensor timestep, Tensor sample, torch.Generator? generator = null, Tensor? noise = null)
    {
        int n = NumInferenceSteps ?? throw new InvalidOperationException("call SetTimesteps before Step");
        using var scope = NewDisposeScope();

        long t = SchedulerSupport.ToInt64(timestep);
        int stride = Schedule.NumTrainTimesteps / n;
        long prevTimestep = t - stride;

        if (_counter != 1)
        {
            // Keep the last four ε: the 4th-order formula needs no more.
            while (_ets.Count > 3)
            {
                _ets[0].Dispose();
                _ets.RemoveAt(0);
            }
            _ets.Add(Keep(modelOutput));
        }
        else
        {
            // Second warm-up call: redo the first step, t + δ → t, from the remembered sample.
            prevTimestep = t;
            t += stride;
        }

        Tensor epsilon;
        if (_ets.Count == 1 && _counter == 0)
        {
            epsilon = modelOutput;
            _curSample?.Dispose();
            _curSample = Keep(sample);
        }
        else if (_ets.Count == 1 && _counter == 1)
        {
            epsilon = (modelOutput + _ets[^1]) / 2;
            sample = _curSample!;
        }
        else if (_ets.Count == 2)
            epsilon = (3 * _ets[^1] - _ets[^2]) / 2;
        else if (_ets.Count == 3)
            epsilon = (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12;
        else
            epsilon = 1.0 / 24 * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]);

        var prevSample = PrevSample(sample, t, prevTimestep, epsilon);
        if (_counter == 1)
        {
            _curSample?.Dispose();
            _curSample = null;
        }
        _counter++;
        return new SchedulerStepOutput(prevSample.MoveToOuterDisposeScope(), null);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ResetHistory();
        _timesteps?.Dispose();
        Schedule.Dispose();
    }

    // x_(t−δ) by formula (9) of the PNDM paper, https://arxiv.org/pdf/2202.09778.pdf, with x_t added to both sides.
    // Notation (<variable name> -> <name in paper>
    // alpha_prod_t -> α_t
    // alpha_prod_t_prev -> α_(t−δ)
    // beta_prod_t -> (1 - α_t)
    // beta_prod_t_prev -> (1 - α_(t−δ))
    // sample -> x_t
    // model_output -> e_θ(x_t, t)
    // prev_sample -> x_(t−δ)
    private Tensor PrevSample(Tensor sample, long timestep, long prevTimestep, Tensor modelOutput)
    {
        float alphaProdT = Schedule.AlphasCumprodValues[timestep];
        float alphaProdTPrev = prevTimestep >= 0 ? Schedule.AlphasCumprodValues[prevTimestep] : _finalAlphaCumprod;
        float betaProdT = 1f - alphaProdT;
        float betaProdTPrev = 1f - alphaProdTPrev;

        if (Config.PredictionType == PredictionTypes.VPrediction)
            modelOutput = MathF.Sqrt(alphaProdT) * modelOutput + MathF.Sqrt(betaProdT) * sample;

        // corresponds to (α_(t−δ) - α_t) divided by
        // denominator of x_t in formula (9) and plus 1
        // Note: (α_(t−δ) - α_t) / (sqrt(α_t) * (sqrt(α_(t−δ)) + sqr(α_t))) =
        // sqrt(α_(t−δ)) / sqrt(α_t))
        float sampleCoeff = MathF.Sqrt(alphaProdTPrev / alphaProdT);

        // corresponds to denominator of e_θ(x_t, t) in formula (9)
        float modelOutputDenomCoeff = alphaProdT * MathF.Sqrt(betaProdTPrev) + MathF.Sqrt(alphaProdT * betaProdT * alphaProdTPrev);

        // full formula (9)
        return sampleCoeff * sample - (alphaProdTPrev - alphaProdT) * modelOutput / modelOutputDenomCoeff;
    }

    // The scheduler's own copy of a caller's tensor, outside every dispose scope: the caller may free the original.
    private static Tensor Keep(Tensor tensor) => tensor.detach().clone().DetachFromDisposeScope();

    private void ResetHistory()
    {
        foreach (var et in _ets)
            et.Dispose();
        _ets.Clear();
        _curSample?.Dispose();
        _curSample = null;
        _counter = 0;
    }
}
