using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>The stack of encoder layers. Mirrors transformers' <c>CLIPEncoder</c>.</summary>
internal sealed class ClipEncoder : nn.Module
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipTextConfig config, Device? device) : base(nameof(ClipEncoder))
    {
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new ClipEncoderLayer(config, device)).ToArray());
        RegisterComponents();
    }

    /// <summary>The number of layers.</summary>
    public int Count => layers.Count;

    /// <summary>Runs layer <paramref name="index"/> (0-based).</summary>
    public Tensor Layer(int index, Tensor hiddenStates) => layers[index].call(hiddenStates);
}
