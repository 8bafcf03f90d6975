using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>Embeddings, encoder, final LayerNorm. Mirrors transformers' <c>CLIPTextTransformer</c> (no pooling: SD does not use it).</summary>
internal sealed class ClipTextTransformer : nn.Module
{
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly nn.Module<Tensor, Tensor> final_layer_norm;

    public ClipTextTransformer(ClipTextConfig config, Device? device) : base(nameof(ClipTextTransformer))
    {
        embeddings = new ClipTextEmbeddings(config, device);
        encoder = new ClipEncoder(config, device);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    /// <summary>The number of encoder layers.</summary>
    public int LayerCount => encoder.Count;

    /// <summary>
    /// The hidden states transformers returns with <c>output_hidden_states</c>, stopping after
    /// <paramref name="layers"/> layers: [embeddings, output of layer 1, …, output of layer <paramref name="layers"/>].
    /// None has the final LayerNorm applied.
    /// </summary>
    public List<Tensor> HiddenStates(Tensor inputIds, int layers)
    {
        var states = new List<Tensor> { embeddings.call(inputIds) };
        for (int i = 0; i < layers; i++)
            states.Add(encoder.Layer(i, states[^1]));
        return states;
    }

    /// <summary>The output of the first <paramref name="layers"/> layers, through the final LayerNorm.</summary>
    public Tensor Encode(Tensor inputIds, int layers)
    {
        Tensor hidden = embeddings.call(inputIds);
        for (int i = 0; i < layers; i++)
        {
            using var previous = hidden;
            hidden = encoder.Layer(i, previous);
        }
        using (hidden)
            return final_layer_norm.call(hidden);
    }

    /// <summary>The final LayerNorm alone.</summary>
    public Tensor FinalLayerNorm(Tensor hiddenStates) => final_layer_norm.call(hiddenStates);
}
