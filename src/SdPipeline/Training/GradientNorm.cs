using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>Global gradient norm and clipping, computed as <c>torch.nn.utils.clip_grad_norm_</c> does.</summary>
public static class GradientNorm
{
    /// <summary>
    /// The L2 norm over every gradient (the norm of the per-tensor norms), and, when <paramref name="maxNorm"/> is
    /// positive, gradients scaled by <c>min(1, maxNorm / (norm + 1e-6))</c> in place. A non-finite norm is
    /// returned as it is and nothing is scaled, so the caller can refuse the step.
    /// </summary>
    public static double ClipAndMeasure(IEnumerable<Parameter> parameters, double maxNorm)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        var total = torch.stack(grads.Select(g => g.to(ScalarType.Float32).norm()).ToList()).norm();
        double norm = total.item<float>();
        if (maxNorm > 0 && double.IsFinite(norm))
        {
            var coefficient = (maxNorm / (total + 1e-6)).clamp_max(1.0);
            foreach (var grad in grads) grad.mul_(coefficient.to(grad.dtype));
        }
        return norm;
    }
}
