using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Halves the resolution with a stride-2 3×3 convolution. With <c>padding</c> 0 (the VAE encoder) the input is
/// first padded by one pixel on the right and bottom only, as the original LDM code does.
/// </summary>
/// <remarks>Mirrors diffusers.models.downsampling.Downsample2D with <c>use_conv=True</c>.</remarks>
public sealed class Downsample2D : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv;
    private readonly long _padding;

    /// <summary>Creates the layer.</summary>
    /// <param name="channels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="padding">Convolution padding: 1 in the UNet, 0 (with asymmetric pre-padding) in the VAE.</param>
    /// <param name="device">Where to create the parameters.</param>
    public Downsample2D(long channels, long outChannels, long padding, Device? device = null) : base(nameof(Downsample2D))
    {
        conv = nn.Conv2d(channels, outChannels, 3, stride: 2, padding: padding, device: device);
        _padding = padding;
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates)
    {
        using var scope = NewDisposeScope(); // frees the intermediates on return (docs/performance.md, memory)
        if (_padding == 0) hiddenStates = nn.functional.pad(hiddenStates, [0, 1, 0, 1], PaddingModes.Constant, 0);
        return scope.MoveToOuter(conv.call(hiddenStates));
    }
}
