using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>Settings of the exponential moving average, as diffusers' <c>EMAModel</c> takes them.</summary>
/// <param name="Decay">Maximum decay.</param>
/// <param name="MinDecay">Minimum decay.</param>
/// <param name="UpdateAfterStep">Optimizer steps before averaging starts.</param>
/// <param name="UseWarmup">Use the (1 + step/γ)^-power warm-up instead of (1 + step)/(10 + step).</param>
/// <param name="InvGamma">Warm-up γ.</param>
/// <param name="Power">Warm-up power.</param>
public sealed record EmaSettings(double Decay = 0.9999, double MinDecay = 0.0, int UpdateAfterStep = 0, bool UseWarmup = false, double InvGamma = 1.0, double Power = 2.0 / 3.0);

/// <summary>
/// An exponential moving average of the trained weights, step for step as diffusers' <c>EMAModel</c>:
/// the decay is 0 at the first step (the average starts as the weights), then (1+s)/(10+s) or the warm-up
/// curve, capped at <see cref="EmaSettings.Decay"/>. The shadow copy may live on the CPU to spare device memory.
/// </summary>
public sealed class EmaModel : IDisposable
{
    private readonly EmaSettings _settings;
    private readonly Dictionary<string, Tensor> _shadow = new(StringComparer.Ordinal);

    /// <summary>Starts an average of <paramref name="parameters"/>, stored on <paramref name="device"/>.</summary>
    public EmaModel(IEnumerable<(string Name, Parameter Parameter)> parameters, EmaSettings settings, Device device)
    {
        _settings = settings;
        using var noGrad = torch.no_grad();
        foreach (var (name, parameter) in parameters)
            _shadow[name] = parameter.detach().to(device).clone().DetachFromDisposeScope();
    }

    /// <summary>Averaging steps taken.</summary>
    public long OptimizationStep { get; private set; }

    /// <summary>The decay of the last step.</summary>
    public double CurrentDecay { get; private set; }

    /// <summary>The averaged weights by parameter name.</summary>
    public IReadOnlyDictionary<string, Tensor> Shadow => _shadow;

    /// <summary>diffusers' <c>get_decay</c>.</summary>
    public double DecayAt(long optimizationStep)
    {
        long step = Math.Max(0, optimizationStep - _settings.UpdateAfterStep - 1);
        if (step <= 0) return 0.0;
        double decay = _settings.UseWarmup
            ? 1 - Math.Pow(1 + step / _settings.InvGamma, -_settings.Power)
            : (1.0 + step) / (10.0 + step);
        return Math.Max(Math.Min(decay, _settings.Decay), _settings.MinDecay);
    }

    /// <summary>
    /// Moves the average toward <paramref name="parameters"/> after an optimizer step: <c>s −= (1 − decay)·(s − p)</c>,
    /// as diffusers' <c>EMAModel.step</c> (a frozen parameter is copied). Float32 CPU averages of parameters on the CPU
    /// take one pass over memory (<see cref="EmaKernel"/>), the same three float32 operations per element.
    /// </summary>
    public void Step(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        OptimizationStep++;
        CurrentDecay = DecayAt(OptimizationStep);
        double oneMinusDecay = 1 - CurrentDecay;
        using var noGrad = torch.no_grad();
        var fused = new List<EmaKernel.Buffers>();
        foreach (var (name, parameter) in parameters)
        {
            using var scope = torch.NewDisposeScope();
            var shadow = _shadow[name];
            // A CPU parameter is its own .to(CPU): its memory outlives this scope, so the kernel may read it after the loop.
            var current = parameter.to(shadow.device);
            if (!parameter.requires_grad) shadow.copy_(current);
            else if (parameter.device_type == DeviceType.CPU && EmaKernel.Supports(shadow, current)) fused.Add(EmaKernel.Of(shadow, current));
            else shadow.sub_((shadow - current) * oneMinusDecay);
        }
        if (fused.Count > 0) EmaKernel.Step(fused, (float)oneMinusDecay, torch.get_num_threads());
    }

    /// <summary>Copies the averaged weights named <c>PREFIX + key</c> into <paramref name="module"/>'s parameter <c>key</c>.</summary>
    public void CopyTo(nn.Module module, string prefix = "")
    {
        using var noGrad = torch.no_grad();
        var state = module.state_dict();
        foreach (var (name, shadow) in _shadow)
            if (name.StartsWith(prefix, StringComparison.Ordinal)) state[name[prefix.Length..]].copy_(shadow);
    }

    /// <summary>Copies the averaged weights into the parameters of the same names.</summary>
    public void CopyTo(IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, parameter) in parameters)
            if (_shadow.TryGetValue(name, out var shadow)) parameter.copy_(shadow);
    }

    /// <summary>Restores a saved average.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> shadow, long optimizationStep)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, tensor) in _shadow) tensor.copy_(shadow[name]);
        OptimizationStep = optimizationStep;
        CurrentDecay = DecayAt(optimizationStep);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var tensor in _shadow.Values) tensor.Dispose();
        _shadow.Clear();
    }
}
