using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>
/// Dynamic loss scaling for float16 training, TorchSharp's missing <c>torch.amp.GradScaler</c> with its defaults.
/// Float16 flushes values below 6e-5 to zero, which many gradients are; multiplying the loss by a large scale
/// shifts the whole backward pass into float16's range. The float32 gradients are divided by it again before the
/// optimizer sees them. When a step's gradients overflow (inf/NaN) the step is skipped and the scale halved; after
/// <c>growthInterval</c> finite steps in a row it is doubled again, so it hovers just below the overflow point.
/// </summary>
/// <remarks>
/// <para>Use, once per optimizer step (micro-batches of gradient accumulation each back-propagate a scaled loss):</para>
/// <code>
/// scaler.ScaleLoss(loss).backward();
/// scaler.UnscaleGradients();               // optional: before clipping, so clipping sees true gradients
/// clip_grad_norm_(parameters, maxNorm);
/// bool stepped = scaler.Step(() => optimizer.step());   // skipped, and the scale halved, on inf/NaN
/// optimizer.zero_grad();                   // in either case
/// </code>
/// <para>
/// For <c>no</c> and <c>bf16</c> the scaler is constructed disabled (as torch's <c>GradScaler(enabled=False)</c>),
/// so the training loop has one code path: <see cref="ScaleLoss"/> returns the loss unscaled, <see cref="Step"/>
/// always steps, <see cref="Scale"/> stays 1 and nothing is checked (no device synchronisation).
/// </para>
/// <para>
/// The inf/NaN check is one reduction: every gradient's sum, stacked and summed, is tested once, which costs one
/// host synchronisation per step (torch's fused <c>_amp_foreach_non_finite_check_and_unscale_</c> is not exposed
/// by TorchSharp). A sum is non-finite when any element is; it could also overflow from finite values beyond
/// 3e38, in which case skipping the step is the right reaction too. The scale is kept on the host: the skip
/// decision needs the flag there anyway, since a TorchSharp optimizer step cannot be made conditional on the device.
/// </para>
/// </remarks>
public sealed class DynamicLossScaler
{
    /// <summary>torch.amp.GradScaler's initial scale, 2^16.</summary>
    public const double DefaultInitScale = 65536.0;

    /// <summary>torch.amp.GradScaler's growth factor.</summary>
    public const double DefaultGrowthFactor = 2.0;

    /// <summary>torch.amp.GradScaler's backoff factor.</summary>
    public const double DefaultBackoffFactor = 0.5;

    /// <summary>torch.amp.GradScaler's growth interval, in consecutive finite steps.</summary>
    public const int DefaultGrowthInterval = 2000;

    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly double _growthFactor;
    private readonly double _backoffFactor;
    private readonly int _growthInterval;
    // Whether this step's gradients were already unscaled, and were finite: an explicit UnscaleGradients before
    // clipping must not be repeated by Step.
    private bool? _unscaledAndFinite;

    /// <summary>Creates a scaler over the parameters the optimizer updates.</summary>
    /// <param name="parameters">The trainable parameters (those whose gradients are unscaled and checked).</param>
    /// <param name="enabled">False makes every method a pass-through (float32 and bfloat16 training).</param>
    /// <param name="initScale">The first scale.</param>
    /// <param name="growthFactor">What the scale is multiplied by after <paramref name="growthInterval"/> finite steps.</param>
    /// <param name="backoffFactor">What the scale is multiplied by after an overflow.</param>
    /// <param name="growthInterval">Consecutive finite steps before the scale grows.</param>
    /// <exception cref="ArgumentOutOfRangeException">A factor or the interval is out of its range.</exception>
    public DynamicLossScaler(IEnumerable<Parameter> parameters, bool enabled = true, double initScale = DefaultInitScale,
        double growthFactor = DefaultGrowthFactor, double backoffFactor = DefaultBackoffFactor, int growthInterval = DefaultGrowthInterval)
    {
        if (!(initScale > 0) || double.IsInfinity(initScale)) throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "the scale must be positive and finite");
        if (!(growthFactor > 1)) throw new ArgumentOutOfRangeException(nameof(growthFactor), growthFactor, "the growth factor must be above 1");
        if (!(backoffFactor > 0 && backoffFactor < 1)) throw new ArgumentOutOfRangeException(nameof(backoffFactor), backoffFactor, "the backoff factor must be in (0, 1)");
        if (growthInterval < 1) throw new ArgumentOutOfRangeException(nameof(growthInterval), growthInterval, "the growth interval must be at least 1 step");
        _parameters = parameters.ToList();
        Enabled = enabled;
        Scale = enabled ? initScale : 1.0;
        _growthFactor = growthFactor;
        _backoffFactor = backoffFactor;
        _growthInterval = growthInterval;
    }

    /// <summary>A scaler for <paramref name="precision"/>: enabled for fp16, a pass-through for no and bf16.</summary>
    public static DynamicLossScaler For(MixedPrecision precision, IEnumerable<Parameter> parameters) =>
        new(parameters, enabled: precision.UsesLossScaling);

    /// <summary>Whether the scaler scales and checks (fp16) or passes everything through.</summary>
    public bool Enabled { get; }

    /// <summary>The factor the loss is multiplied by (1 when disabled); a metric worth logging.</summary>
    public double Scale { get; private set; }

    /// <summary>Consecutive finite steps since the scale last changed.</summary>
    public int GrowthTracker { get; private set; }

    /// <summary>Optimizer steps skipped so far because of inf/NaN gradients; a metric worth logging.</summary>
    public long SkippedSteps { get; private set; }

    /// <summary>Whether the last <see cref="Step"/> was skipped.</summary>
    public bool LastStepSkipped { get; private set; }

    /// <summary>The loss times <see cref="Scale"/>, to back-propagate (a new tensor the caller owns; the loss itself when disabled, as an alias).</summary>
    public Tensor ScaleLoss(Tensor loss) => Enabled ? loss * Scale : loss.alias();

    /// <summary>
    /// Divides every gradient by <see cref="Scale"/> in place and reports whether all are finite. Call it before
    /// anything that reads gradient magnitudes (clipping, norms); <see cref="Step"/> calls it when it was not.
    /// </summary>
    /// <returns>True when every gradient is finite (always true when disabled).</returns>
    public bool UnscaleGradients()
    {
        if (!Enabled) return true;
        if (_unscaledAndFinite is bool known) return known;
        using var scope = torch.NewDisposeScope();
        double inverse = 1.0 / Scale;
        var sums = new List<Tensor>();
        foreach (var parameter in _parameters)
        {
            var grad = parameter.grad;
            if (grad is null) continue;
            grad.mul_(inverse);
            sums.Add(grad.sum(type: ScalarType.Float32));
        }
        bool finite = sums.Count == 0 || torch.stack(sums).sum().isfinite().item<bool>();
        _unscaledAndFinite = finite;
        return finite;
    }

    /// <summary>
    /// Unscales the gradients (unless <see cref="UnscaleGradients"/> already did), runs
    /// <paramref name="optimizerStep"/> only when they are all finite, and updates the scale: halved (and the growth
    /// count reset) after an overflow, doubled after <c>growthInterval</c> finite steps in a row.
    /// </summary>
    /// <returns>True when the optimizer stepped; false when the step was skipped.</returns>
    public bool Step(Action optimizerStep)
    {
        if (!Enabled)
        {
            optimizerStep();
            return true;
        }
        bool finite = UnscaleGradients();
        if (finite) optimizerStep();
        Update(finite);
        return finite;
    }

    /// <summary>The state to store in a training checkpoint.</summary>
    public LossScalerState ExportState() => new(Scale, GrowthTracker, SkippedSteps);

    /// <summary>Continues from a checkpoint's <paramref name="state"/>.</summary>
    /// <exception cref="ArgumentException">The state is inconsistent (a scale that is not positive and finite, a negative count).</exception>
    public void ImportState(LossScalerState state)
    {
        if (!(state.Scale > 0) || double.IsInfinity(state.Scale))
            throw new ArgumentException($"loss scaler state: scale {state.Scale} is not positive and finite", nameof(state));
        if (state.GrowthTracker < 0 || state.SkippedSteps < 0)
            throw new ArgumentException($"loss scaler state: growth tracker {state.GrowthTracker} and skipped steps {state.SkippedSteps} must not be negative", nameof(state));
        if (!Enabled && state.Scale != 1.0)
            throw new ArgumentException($"loss scaler state: scale {state.Scale} comes from an fp16 run, but this scaler is disabled (no or bf16)", nameof(state));
        Scale = state.Scale;
        GrowthTracker = state.GrowthTracker;
        SkippedSteps = state.SkippedSteps;
        _unscaledAndFinite = null;
    }

    // torch's _amp_update_scale_: back off on overflow, grow after growthInterval finite steps (only while the grown
    // scale stays a finite float32, the dtype torch keeps it in).
    private void Update(bool finite)
    {
        LastStepSkipped = !finite;
        _unscaledAndFinite = null;
        if (!finite)
        {
            SkippedSteps++;
            Scale *= _backoffFactor;
            GrowthTracker = 0;
            return;
        }
        GrowthTracker++;
        if (GrowthTracker < _growthInterval) return;
        double grown = Scale * _growthFactor;
        if (float.IsFinite((float)grown)) Scale = grown;
        GrowthTracker = 0;
    }
}
