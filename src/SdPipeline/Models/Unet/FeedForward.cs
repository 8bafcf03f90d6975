using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>The transformer MLP: GEGLU to 4× width, then a projection back (<c>net.0</c>, <c>net.2</c>).</summary>
/// <remarks>Mirrors diffusers.models.attention.FeedForward with <c>activation_fn="geglu"</c>, <c>mult=4</c>.</remarks>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> net;

    /// <summary>Creates the MLP.</summary>
    /// <param name="dim">Input and output width.</param>
    /// <param name="device">Where to create the parameters.</param>
    public FeedForward(long dim, Device? device = null) : base(nameof(FeedForward))
    {
        long innerDim = dim * 4;
        // net.1 is diffusers' Dropout(0.0), kept so the output projection is key "net.2".
        net = nn.ModuleList<nn.Module<Tensor, Tensor>>(new GEGLU(dim, innerDim, device), nn.Dropout(0.0), nn.Linear(innerDim, dim, device: device));
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates) => net[2].call(net[0].call(hiddenStates));
}
