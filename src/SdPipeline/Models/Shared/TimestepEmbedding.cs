using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>The MLP over the sinusoidal timestep embedding: <c>linear_1</c> → SiLU → <c>linear_2</c>.</summary>
/// <remarks>Mirrors diffusers.models.embeddings.TimestepEmbedding (no condition projection, no post activation).</remarks>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> linear_1;
    private readonly nn.Module<Tensor, Tensor> linear_2;

    /// <summary>Creates the MLP.</summary>
    /// <param name="inChannels">Sinusoidal embedding width.</param>
    /// <param name="timeEmbedDim">Output width.</param>
    /// <param name="device">Where to create the parameters.</param>
    public TimestepEmbedding(long inChannels, long timeEmbedDim, Device? device = null) : base(nameof(TimestepEmbedding))
    {
        linear_1 = nn.Linear(inChannels, timeEmbedDim, device: device);
        linear_2 = nn.Linear(timeEmbedDim, timeEmbedDim, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor sample) => linear_2.call(nn.functional.silu(linear_1.call(sample)));
}
