using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>Doubles the resolution (nearest neighbour), then a 3×3 convolution.</summary>
/// <remarks>Mirrors diffusers.models.upsampling.Upsample2D with <c>use_conv=True</c>, <c>interpolate=True</c>.</remarks>
public sealed class Upsample2D : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv;

    /// <summary>Creates the layer.</summary>
    /// <param name="channels">Input channels.</param>
    /// <param name="outChannels">Output channels.</param>
    /// <param name="device">Where to create the parameters.</param>
    public Upsample2D(long channels, long outChannels, Device? device = null) : base(nameof(Upsample2D))
    {
        conv = nn.Conv2d(channels, outChannels, 3, stride: 1, padding: 1, device: device);
        RegisterComponents();
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor hiddenStates) => Forward(hiddenStates, null);

    /// <summary>Upsamples to twice the size, or to <paramref name="outputSize"/> [H, W] when the UNet input was not a multiple of its overall factor.</summary>
    public Tensor Forward(Tensor hiddenStates, long[]? outputSize)
    {
        using var scope = NewDisposeScope(); // frees the intermediates on return (docs/performance.md, memory)
        hiddenStates = outputSize is null
            ? nn.functional.interpolate(hiddenStates, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : nn.functional.interpolate(hiddenStates, size: outputSize, mode: InterpolationMode.Nearest);
        return scope.MoveToOuter(Convolutions.Apply(conv, hiddenStates, this.InInference()));
    }
}
