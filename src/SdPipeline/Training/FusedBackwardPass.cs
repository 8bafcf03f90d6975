using SdPipeline.Training.Optimization;
using SdPipeline.Training.Precision;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// AdamW stepped inside backward (<c>train.fused_backward_pass</c>, kohya's name for it): each trained parameter of the
/// models' training layers reaches its operation through an identity node whose backward updates the parameter with
/// the gradient it receives and lets the gradient go, so the model's gradients are never held all at once.
/// </summary>
/// <remarks>
/// PyTorch does this with post-accumulate-grad hooks, which TorchSharp does not have; the identity autograd function
/// (<see cref="StepInBackwardFunction"/>) stands in for them. Parameters outside the training layers (LoRA adapters,
/// embeddings) collect their gradients in <c>.grad</c> as usual and are stepped when backward has finished. Every
/// element gets the update <see cref="AdamW.Step"/> gives it, in the same order of operations, so the parameters are the
/// same bit for bit; what cannot be had is anything that needs every gradient before the first update — global-norm
/// clipping, gradient accumulation, fp16 loss scaling — which the train stage refuses beside it.
/// </remarks>
public sealed class FusedBackwardPass : IDisposable
{
    private readonly AdamW _optimizer;
    private readonly Dictionary<Parameter, string> _names = new(ReferenceEqualityComparer.Instance);
    private readonly List<AutocastLayer> _layers = [];
    private readonly HashSet<string> _stepped = new(StringComparer.Ordinal);
    private StepCoefficients? _step;
    // Each stepped gradient's norm, kept on its device until Finish: reading it back per parameter would make a
    // CUDA backward wait for the device at every parameter.
    private readonly List<Tensor> _norms = [];

    private FusedBackwardPass(AdamW optimizer) => _optimizer = optimizer;

    /// <summary>Routes the trained parameters of <paramref name="models"/>' training layers (<see cref="AutocastLayers.Apply"/>) through <paramref name="optimizer"/>.</summary>
    public static FusedBackwardPass Attach(AdamW optimizer, params nn.Module[] models)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var pass = new FusedBackwardPass(optimizer);
        foreach (var (name, parameter) in optimizer.Parameters) pass._names[parameter] = name;
        foreach (var layer in models.SelectMany(m => m.modules()).OfType<AutocastLayer>())
        {
            layer.ParameterRoute = pass.Route;
            pass._layers.Add(layer);
        }
        return pass;
    }

    /// <summary>Starts an optimizer step at learning rate <paramref name="lr"/>: the forward and backward that follow update the parameters.</summary>
    public void Begin(double lr)
    {
        if (_step is not null) throw new InvalidOperationException("the previous fused step was not finished");
        _step = _optimizer.BeginStep(lr);
        _stepped.Clear();
        DisposeNorms();
    }

    /// <summary>
    /// Ends the step once backward has returned: steps the parameters whose gradients reached <c>.grad</c>, and returns
    /// the global gradient norm of the step (every gradient's, as <c>clip_grad_norm_</c> would have measured it).
    /// </summary>
    public double Finish()
    {
        var step = _step ?? throw new InvalidOperationException("no fused step was begun");
        double norm;
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            var norms = _norms.Concat(_optimizer.Parameters.Where(p => p.Parameter.grad is not null).Select(p => Norm(p.Parameter.grad!))).ToList();
            // Squared and summed in float64, so the order the gradients arrived in does not round the total.
            norm = norms.Count == 0 ? 0 : Math.Sqrt(torch.stack(norms).to(ScalarType.Float64).square().sum().item<double>());
        }
        DisposeNorms();
        _optimizer.StepRemaining(step);
        _step = null;
        return norm;
    }

    /// <summary>Takes the routing off the layers again.</summary>
    public void Dispose()
    {
        foreach (var layer in _layers) layer.ParameterRoute = null;
        _layers.Clear();
        DisposeNorms();
    }

    private void DisposeNorms()
    {
        foreach (var norm in _norms) norm.Dispose();
        _norms.Clear();
    }

    private Tensor Route(Parameter parameter) =>
        _step is not null && _names.TryGetValue(parameter, out string? name)
            ? StepInBackwardFunction.apply(parameter, new Target(this, name, parameter))
            : parameter;

    // Called from backward with the gradient of one use of the parameter.
    private void Step(Target target, Tensor grad)
    {
        var step = _step ?? throw new InvalidOperationException($"{target.Name} received a gradient outside a fused step");
        if (!_stepped.Add(target.Name))
            throw new InvalidOperationException($"{target.Name} received a second gradient in one backward: a parameter used twice in a forward cannot be stepped in backward; set train.fused_backward_pass=false");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        // AccumulateGrad would have laid the gradient out like the parameter; the fused kernel needs that too.
        var laidOut = grad.is_contiguous() ? grad : grad.contiguous();
        _norms.Add(Norm(laidOut).DetachFromDisposeScope());
        _optimizer.StepParameter(target.Name, target.Parameter, laidOut, step);
    }

    // Each gradient's float32 2-norm by libtorch (GradientNorm sums float32 CPU gradients in float64: the two agree to float32 rounding).
    private static Tensor Norm(Tensor grad) => grad.to(ScalarType.Float32).norm();

    /// <summary>What a node steps: the pass, and the parameter with its optimizer name.</summary>
    internal sealed record Target(FusedBackwardPass Pass, string Name, Parameter Parameter)
    {
        public void Step(Tensor grad) => Pass.Step(this, grad);
    }
}

/// <summary>
/// The identity on a parameter whose backward hands the parameter's gradient to <see cref="FusedBackwardPass"/> and
/// returns none, so nothing accumulates in <c>.grad</c>. Arguments of <c>apply</c>: the parameter and its
/// <see cref="FusedBackwardPass.Target"/>.
/// </summary>
internal sealed class StepInBackwardFunction : autograd.SingleTensorFunction<StepInBackwardFunction>
{
    private const string TargetKey = "target";

    /// <inheritdoc />
    public override string Name => nameof(StepInBackwardFunction);

    /// <inheritdoc />
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ctx.save_data(TargetKey, vars[1]);
        // The same storage under a new tensor: the node becomes its grad_fn. The parameter is only written in this
        // node's backward, after the operation that used it has computed its own gradients.
        return ((Tensor)vars[0]).detach();
    }

    /// <inheritdoc />
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        ((FusedBackwardPass.Target)ctx.get_data(TargetKey)).Step(gradOutput);
        // The handle TorchSharp made for this callback; libtorch keeps its own reference.
        gradOutput.Dispose();
        return [null!, null!];
    }
}
