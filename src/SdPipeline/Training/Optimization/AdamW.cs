using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training.Optimization;

/// <summary>
/// AdamW (Loshchilov and Hutter) with the exact operations, in the exact order, of PyTorch's
/// <c>_single_tensor_adamw</c> (the path <c>torch.optim.AdamW</c> takes for CPU tensors), so a step here gives
/// the parameters diffusers' training script gives. Written out rather than taken from TorchSharp so its
/// state is ours to checkpoint (as safetensors, by parameter name) and to restore bit for bit. Float32 CPU
/// parameters are updated by one fused pass over memory (<see cref="AdamWKernel"/>), the same operations per element.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _parameters;
    private readonly Dictionary<string, (Tensor ExpAvg, Tensor ExpAvgSq)> _state = new(StringComparer.Ordinal);

    /// <summary>Optimises <paramref name="parameters"/> (name → parameter, names used for the saved state).</summary>
    public AdamW(IEnumerable<(string Name, Parameter Parameter)> parameters, double beta1 = 0.9, double beta2 = 0.999, double weightDecay = 1e-2, double epsilon = 1e-8)
    {
        _parameters = parameters.ToList();
        Beta1 = beta1;
        Beta2 = beta2;
        WeightDecay = weightDecay;
        Epsilon = epsilon;
    }

    /// <summary>First-moment decay.</summary>
    public double Beta1 { get; }

    /// <summary>Second-moment decay.</summary>
    public double Beta2 { get; }

    /// <summary>Decoupled weight decay.</summary>
    public double WeightDecay { get; }

    /// <summary>Denominator epsilon.</summary>
    public double Epsilon { get; }

    /// <summary>Optimizer steps taken (PyTorch keeps one per parameter; they are always equal here).</summary>
    public long StepCount { get; private set; }

    /// <summary>The optimised parameters.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters => _parameters;

    /// <summary>
    /// Whether float32 CPU parameters take the fused single-pass update (<see cref="AdamWKernel"/>); false forces the
    /// op-by-op form for every parameter, which CUDA and other dtypes always take.
    /// </summary>
    internal bool Fused { get; init; } = true;

    /// <summary>
    /// One update with learning rate <paramref name="lr"/>, each gradient multiplied by <paramref name="gradientScale"/>
    /// first (a clipping coefficient, <see cref="GradientClip.Coefficient"/>): the same float32 products as scaling the
    /// gradients in place beforehand. Parameters without a gradient are left alone.
    /// </summary>
    public void Step(double lr, float gradientScale = 1f) => StepRemaining(BeginStep(lr), gradientScale);

    /// <summary>
    /// Counts a new step and returns its coefficients, for a step taken one parameter at a time as the gradients
    /// arrive (<see cref="StepParameter"/>, then <see cref="StepRemaining"/> for the parameters whose gradients
    /// reached <c>.grad</c> instead).
    /// </summary>
    internal StepCoefficients BeginStep(double lr)
    {
        StepCount++;
        double biasCorrection1 = 1 - Math.Pow(Beta1, StepCount);
        double biasCorrection2 = 1 - Math.Pow(Beta2, StepCount);
        return new StepCoefficients(lr, lr / biasCorrection1, Math.Sqrt(biasCorrection2));
    }

    /// <summary>
    /// Updates every parameter that holds a gradient in <c>.grad</c> with <paramref name="step"/>'s coefficients, the
    /// gradient multiplied by <paramref name="gradientScale"/>.
    /// </summary>
    internal void StepRemaining(StepCoefficients step, float gradientScale = 1f)
    {
        using var noGrad = torch.no_grad();
        var fused = new List<AdamWKernel.Buffers>(_parameters.Count);
        var gradients = new List<Tensor>(_parameters.Count);
        try
        {
            foreach (var (name, parameter) in _parameters)
            {
                var grad = parameter.grad;
                if (grad is null) continue;
                gradients.Add(grad);
                var moments = Moments(name, parameter);
                if (Fused && AdamWKernel.Supports(parameter, grad, moments.ExpAvg, moments.ExpAvgSq))
                    fused.Add(AdamWKernel.Of(parameter, grad, moments.ExpAvg, moments.ExpAvgSq));
                else
                {
                    if (gradientScale != 1f) grad.mul_(gradientScale);
                    StepOpByOp(parameter, grad, moments, step);
                }
            }
            if (fused.Count > 0) AdamWKernel.Step(fused, KernelScalars(step, gradientScale), torch.get_num_threads());
        }
        finally
        {
            // The wrappers only: the gradients themselves stay on the parameters until ZeroGrad.
            foreach (var grad in gradients) grad.Dispose();
        }
    }

    /// <summary>Updates one parameter with <paramref name="grad"/>, which never reaches its <c>.grad</c>.</summary>
    internal void StepParameter(string name, Parameter parameter, Tensor grad, StepCoefficients step)
    {
        using var noGrad = torch.no_grad();
        var moments = Moments(name, parameter);
        if (Fused && AdamWKernel.Supports(parameter, grad, moments.ExpAvg, moments.ExpAvgSq))
            AdamWKernel.Step([AdamWKernel.Of(parameter, grad, moments.ExpAvg, moments.ExpAvgSq)], KernelScalars(step, 1f), torch.get_num_threads());
        else
            StepOpByOp(parameter, grad, moments, step);
    }

    private (Tensor ExpAvg, Tensor ExpAvgSq) Moments(string name, Parameter parameter)
    {
        if (!_state.TryGetValue(name, out var moments))
        {
            moments = (torch.zeros_like(parameter).DetachFromDisposeScope(), torch.zeros_like(parameter).DetachFromDisposeScope());
            _state[name] = moments;
        }
        return moments;
    }

    private void StepOpByOp(Parameter parameter, Tensor grad, (Tensor ExpAvg, Tensor ExpAvgSq) moments, StepCoefficients step)
    {
        using var scope = torch.NewDisposeScope();
        parameter.mul_(1 - step.Lr * WeightDecay);
        moments.ExpAvg.lerp_(grad, 1 - Beta1);
        moments.ExpAvgSq.mul_(Beta2).addcmul_(grad, grad, 1 - Beta2);
        var denominator = (moments.ExpAvgSq.sqrt() / step.BiasCorrection2Sqrt).add_(Epsilon);
        parameter.addcdiv_(moments.ExpAvg, denominator, -step.StepSize);
    }

    private AdamWKernel.Scalars KernelScalars(StepCoefficients step, float gradientScale) =>
        new(gradientScale, (float)(1 - step.Lr * WeightDecay), (float)(1 - Beta1), (float)Beta2, (float)(1 - Beta2),
            (float)step.BiasCorrection2Sqrt, (float)Epsilon, (float)-step.StepSize);

    /// <summary>Clears every gradient (sets them to none, as PyTorch's default <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var (_, parameter) in _parameters)
        {
            var grad = parameter.grad;
            if (grad is null) continue;
            parameter.grad = null;
            grad.Dispose();
        }
    }

    /// <summary>
    /// The moments by name (<c>exp_avg.NAME</c>, <c>exp_avg_sq.NAME</c>) for a checkpoint: the optimizer's own tensors, on
    /// its device, not copies (the caller must not dispose them). A checkpoint writer copies one at a time to the host; copying
    /// them all first would hold twice the trained weights in host memory at every checkpoint of a CUDA run.
    /// </summary>
    public Dictionary<string, Tensor> StateTensors()
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, (expAvg, expAvgSq)) in _state)
        {
            tensors[$"exp_avg.{name}"] = expAvg;
            tensors[$"exp_avg_sq.{name}"] = expAvgSq;
        }
        return tensors;
    }

    /// <summary>Restores the moments and step count saved by <see cref="StateTensors"/>.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> tensors, long stepCount)
    {
        DisposeState();
        foreach (var (name, parameter) in _parameters)
        {
            if (!tensors.TryGetValue($"exp_avg.{name}", out var expAvg) || !tensors.TryGetValue($"exp_avg_sq.{name}", out var expAvgSq)) continue;
            _state[name] = (expAvg.to(parameter.device).DetachFromDisposeScope(), expAvgSq.to(parameter.device).DetachFromDisposeScope());
        }
        StepCount = stepCount;
    }

    private void DisposeState()
    {
        foreach (var (expAvg, expAvgSq) in _state.Values)
        {
            expAvg.Dispose();
            expAvgSq.Dispose();
        }
        _state.Clear();
    }

    /// <inheritdoc />
    public void Dispose() => DisposeState();
}

/// <summary>One AdamW step's coefficients: the learning rate, <c>lr / (1 − β₁ᵗ)</c> and <c>√(1 − β₂ᵗ)</c>.</summary>
internal readonly record struct StepCoefficients(double Lr, double StepSize, double BiasCorrection2Sqrt);
