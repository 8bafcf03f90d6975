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
    public override Tensor forward(Tensor hiddenStates)
    {
        if (torch.is_grad_enabled()) return Apply(hiddenStates);
        // Without autograd the tokens are independent here, so they are run in blocks of rows: the GEGLU projection,
        // eight times the tokens' width, is the largest transient of the UNet's 64×64 transformers (84 MB at 512 px,
        // batch 2) and one block's share of it is all that is alive at once (diffusers offers the same as opt-in
        // "feed-forward chunking"). Results move by float32 rounding only: the GEMM's summation order depends on the
        // row count (0.6–3e-7 on outputs of magnitude ~1, tested).
        long width = hiddenStates.shape[^1], rows = hiddenStates.numel() / width;
        long blocks = (rows * width * 8 * hiddenStates.element_size() + ProjectionBytes - 1) / ProjectionBytes;
        if (blocks <= 1) return Apply(hiddenStates);
        long perBlock = (rows + blocks - 1) / blocks;
        using var tokens = hiddenStates.reshape(rows, width);
        using var output = empty_like(tokens);
        for (long first = 0; first < rows; first += perBlock)
        {
            using var scope = NewDisposeScope();
            long count = Math.Min(perBlock, rows - first);
            output.narrow(0, first, count).copy_(Apply(tokens.narrow(0, first, count)));
        }
        return output.view(hiddenStates.shape);
    }

    // The GEGLU projection of a block of tokens at most this large in inference.
    private const long ProjectionBytes = 16L << 20;

    private Tensor Apply(Tensor hiddenStates) => Linears.Apply(net[2], net[0].call(hiddenStates), this.InInference());
}
