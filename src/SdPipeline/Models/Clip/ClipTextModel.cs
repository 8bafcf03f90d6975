using SdPipeline.Files;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>
/// The CLIP text encoder of Stable Diffusion: token ids [B, 77] → hidden states [B, 77, hidden]. Mirrors
/// transformers' <c>CLIPTextModel</c>, parameter for parameter: its <c>state_dict()</c> keys are transformers'
/// (<c>text_model.embeddings.token_embedding.weight</c>, <c>text_model.encoder.layers.{i}.self_attn.q_proj.weight</c>,
/// …, <c>text_model.final_layer_norm.bias</c>), so a <c>text_encoder/model.safetensors</c> loads as it is.
/// </summary>
public sealed class ClipTextModel : nn.Module<Tensor, Tensor>
{
    /// <summary>What <see cref="FromPretrained"/> tolerates in a file beyond the module's own keys.</summary>
    /// <remarks>
    /// <c>position_ids</c> is the 0..76 buffer transformers before 4.31 saved with the weights (SD 1.5's file has it);
    /// the positions are computed instead.
    /// </remarks>
    public static KeyCompatibility LegacyKeys { get; } = new(
        new HashSet<string> { "text_model.embeddings.position_ids" }, new Dictionary<string, string>());

    private readonly ClipTextTransformer text_model;

    /// <summary>Builds the model with freshly initialised weights on <paramref name="device"/> (default: CPU).</summary>
    /// <param name="config">The architecture.</param>
    /// <param name="device">Where the parameters live; <c>meta</c> allocates nothing (shapes only).</param>
    public ClipTextModel(ClipTextConfig config, Device? device = null) : base(nameof(ClipTextModel))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate(nameof(config));
        Config = config;
        text_model = new ClipTextTransformer(config, device);
        RegisterComponents();
    }

    /// <summary>The architecture.</summary>
    public ClipTextConfig Config { get; }

    /// <summary>
    /// Loads <c>text_encoder/config.json</c> and its safetensors weights from a diffusers model folder, on the CPU
    /// (move it with <c>.to(device)</c> afterwards). Loading is strict: a missing, unexpected or wrongly shaped
    /// key fails with one message listing them; only <see cref="LegacyKeys"/> may be extra.
    /// </summary>
    /// <param name="model">The model folder.</param>
    /// <param name="component">The component folder, <c>text_encoder</c> for SD.</param>
    /// <param name="variant">A precision variant such as <c>fp16</c> (converted to float32 on load), or null.</param>
    /// <param name="warn">Told about config keys that are not understood.</param>
    public static ClipTextModel FromPretrained(DiffusersFolder model, string component = "text_encoder", string? variant = null, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var config = ClipTextConfig.Load(Path.Combine(model.Component(component), "config.json"), warn);
        var encoder = new ClipTextModel(config);
        try
        {
            StateDictLoader.Load(encoder, model.WeightFiles(component, variant), LegacyKeys);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
        return encoder;
    }

    /// <summary>
    /// Writes <c>config.json</c> (with the given special token ids) and <c>model.safetensors</c> into
    /// <paramref name="componentFolder"/>, which transformers' <c>CLIPTextModel.from_pretrained</c> and
    /// <see cref="FromPretrained"/> both load.
    /// </summary>
    public void Save(string componentFolder, int bosTokenId, int eosTokenId, int padTokenId)
    {
        Directory.CreateDirectory(componentFolder);
        SafeTensorsWriter.Write(Path.Combine(componentFolder, "model.safetensors"), state_dict());
        AtomicFile.WriteAllText(Path.Combine(componentFolder, "config.json"),
            Config.ToJson(bosTokenId, eosTokenId, padTokenId).ToString(Newtonsoft.Json.Formatting.Indented) + "\n");
    }

    /// <summary>
    /// <c>last_hidden_state</c>: the output of the last layer through <c>final_layer_norm</c>, what SD feeds the UNet.
    /// </summary>
    /// <param name="inputIds">int64 token ids [B, T], T ≤ <c>max_position_embeddings</c>.</param>
    public override Tensor forward(Tensor inputIds) => Encode(inputIds);

    /// <summary>
    /// The prompt embedding with "clip skip": the output of the layer <paramref name="clipSkip"/> layers before the
    /// last, through <c>final_layer_norm</c>, as diffusers' <c>StableDiffusionPipeline.encode_prompt(clip_skip=…)</c>
    /// computes it (<c>hidden_states[-(clip_skip + 1)]</c>, then the final LayerNorm). 0 is <c>last_hidden_state</c>;
    /// 1 uses the penultimate layer.
    /// </summary>
    /// <param name="inputIds">int64 token ids [B, T].</param>
    /// <param name="clipSkip">Layers to skip at the end, 0 ≤ clipSkip &lt; <c>num_hidden_layers</c>.</param>
    public Tensor Encode(Tensor inputIds, int clipSkip = 0)
    {
        if (clipSkip < 0 || clipSkip >= text_model.LayerCount)
            throw new ArgumentOutOfRangeException(nameof(clipSkip), clipSkip,
                $"clip skip must be between 0 and {text_model.LayerCount - 1} for a {text_model.LayerCount}-layer text encoder");
        return text_model.Encode(inputIds, text_model.LayerCount - clipSkip);
    }

    /// <summary>
    /// transformers' <c>hidden_states</c> (<c>output_hidden_states=True</c>): the embeddings, then each layer's output,
    /// <c>num_hidden_layers + 1</c> tensors [B, T, hidden], none through the final LayerNorm. For inspecting a model
    /// layer by layer; the caller disposes them.
    /// </summary>
    public IReadOnlyList<Tensor> HiddenStates(Tensor inputIds) => text_model.HiddenStates(inputIds, text_model.LayerCount);

    /// <summary>
    /// transformers' <c>hidden_states[<paramref name="index"/>]</c> alone (0 = embeddings, i = output of layer i, no final
    /// LayerNorm), running only the layers it needs. SDXL conditions on <c>num_hidden_layers − 1</c>, the penultimate.
    /// </summary>
    public Tensor HiddenState(Tensor inputIds, int index)
    {
        if (index < 0 || index > text_model.LayerCount)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"a {text_model.LayerCount}-layer encoder has hidden states 0 … {text_model.LayerCount}");
        var states = text_model.HiddenStates(inputIds, index);
        for (int i = 0; i < states.Count - 1; i++) states[i].Dispose();
        return states[^1];
    }
}
