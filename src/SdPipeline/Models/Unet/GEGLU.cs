using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>A gated GELU unit: one projection to twice the width, split into values and (exact) GELU gates.</summary>
/// <remarks>Mirrors diffusers.models.activations.GEGLU.</remarks>
public sealed class GEGLU : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> proj;

    /// <summary>Creates the unit.</summary>
    /// <param name="dimIn">Input width.</param>
    /// <param name="dimOut">Output width (the projection makes twice this).</param>
    /// <param name="device">Where to create the parameters.</param>
    public GEGLU(long dimIn, long dimOut, Device? device = null) : base(nameof(GEGLU))
    {
        proj = nn.Linear(dimIn, dimOut * 2, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope(); // the projection is twice the output's size: free it on return
        var halves = Linears.Apply(proj, hiddenStates, this.InInference()).chunk(2, dim: -1);
        if (torch.is_grad_enabled()) return scope.MoveToOuter(halves[0] * nn.functional.gelu(halves[1]));
        // Without autograd nothing needs the projection afterwards, so the GELU is computed in its own memory: a tensor
        // of the output's size fewer at the UNet's largest transient (the 64×64 transformers). The product goes to fresh
        // memory: a contiguous output is what the feed-forward's own linear kernel reads (Linears).
        halves[1].gelu_();
        return scope.MoveToOuter(halves[0].mul(halves[1]));
    }
}
