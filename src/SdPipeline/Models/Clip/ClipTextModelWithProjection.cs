using Newtonsoft.Json.Linq;
using SdPipeline.Files;
using SdPipeline.Models.Shared;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>
/// A CLIP text encoder with its projection head, SDXL's second text encoder (OpenCLIP ViT-bigG): the
/// <see cref="ClipTextModel"/> transformer plus <c>text_projection</c> (Linear, no bias) applied to the pooled state,
/// the final-LayerNormed output at each sequence's end-of-text position. Mirrors transformers'
/// <c>CLIPTextModelWithProjection</c>; its <c>state_dict()</c> keys are transformers' (<c>text_model.*</c>,
/// <c>text_projection.weight</c>).
/// </summary>
public sealed class ClipTextModelWithProjection : nn.Module<Tensor, Tensor>
{
    // transformers' default CLIPTextConfig.eos_token_id, which old configs still carry.
    private const int LegacyEosTokenId = 2;

    private readonly ClipTextTransformer text_model;
    private readonly nn.Module<Tensor, Tensor> text_projection;

    /// <summary>Builds the model with freshly initialised weights.</summary>
    /// <param name="config">The transformer's architecture.</param>
    /// <param name="projectionDim">Width of <c>text_embeds</c> (<c>projection_dim</c>; SDXL: 1280).</param>
    /// <param name="eosTokenId">
    /// <c>eos_token_id</c> of the config: 2 (the legacy value SD configs carry) pools at the largest id, anything else
    /// at the first position holding that id, as transformers does.
    /// </param>
    /// <param name="device">Where the parameters live.</param>
    public ClipTextModelWithProjection(ClipTextConfig config, int projectionDim, int eosTokenId = LegacyEosTokenId, Device? device = null)
        : base(nameof(ClipTextModelWithProjection))
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate(nameof(config));
        if (projectionDim <= 0) throw new ArgumentOutOfRangeException(nameof(projectionDim), projectionDim, "projection_dim must be positive");
        Config = config;
        ProjectionDim = projectionDim;
        EosTokenId = eosTokenId;
        text_model = new ClipTextTransformer(config, device);
        text_projection = nn.Linear(config.HiddenSize, projectionDim, hasBias: false, device: device);
        RegisterComponents();
    }

    /// <summary>The transformer's architecture.</summary>
    public ClipTextConfig Config { get; }

    /// <summary>Width of the projected pooled embedding (<c>projection_dim</c>).</summary>
    public int ProjectionDim { get; }

    /// <summary>The config's <c>eos_token_id</c>, which selects the pooling rule.</summary>
    public int EosTokenId { get; }

    /// <summary>The number of encoder layers.</summary>
    public int LayerCount => text_model.LayerCount;

    /// <summary>
    /// Loads <c>{component}/config.json</c> and its safetensors weights strictly (every key, no extra, same shapes; the
    /// legacy <c>position_ids</c> buffer is tolerated), on the CPU.
    /// </summary>
    /// <exception cref="DiffusersConfigException">The config is invalid; the message names the file and key.</exception>
    /// <exception cref="WeightsException">The weights do not match the config.</exception>
    public static ClipTextModelWithProjection FromPretrained(DiffusersFolder model, string component = "text_encoder_2", string? variant = null,
        Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        var encoder = FromConfig(Path.Combine(model.Component(component), "config.json"), warn);
        try
        {
            StateDictLoader.Load(encoder, model.WeightFiles(component, variant), ClipTextModel.LegacyKeys);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
        return encoder;
    }

    /// <summary>Builds the model a <c>config.json</c> describes, with freshly initialised weights, on the CPU (or <paramref name="device"/>: meta builds no weights).</summary>
    /// <exception cref="DiffusersConfigException">The config is invalid; the message names the file and key.</exception>
    public static ClipTextModelWithProjection FromConfig(string configPath, Action<string>? warn = null, Device? device = null)
    {
        var config = ClipTextConfig.Load(configPath, warn);
        if (config.ProjectionDim <= 0) throw new DiffusersConfigException($"{configPath}: projection_dim must be positive, found {config.ProjectionDim}");
        return new ClipTextModelWithProjection(config, config.ProjectionDim, config.EosTokenId, device);
    }

    /// <summary>
    /// Writes <c>config.json</c> (architecture <c>CLIPTextModelWithProjection</c>, its <c>projection_dim</c> and the given
    /// token ids) and <c>model.safetensors</c>, which transformers and <see cref="FromPretrained"/> both load.
    /// </summary>
    /// <remarks>
    /// The written <c>eos_token_id</c> is this model's own (which selects the pooling rule), not the vocabulary's.
    /// </remarks>
    public void Save(string componentFolder, int bosTokenId, int padTokenId)
    {
        Directory.CreateDirectory(componentFolder);
        SafeTensorsWriter.Write(Path.Combine(componentFolder, "model.safetensors"), state_dict());
        var json = Config.ToJson(bosTokenId, EosTokenId, padTokenId);
        json["architectures"] = new JArray("CLIPTextModelWithProjection");
        json["projection_dim"] = ProjectionDim;
        AtomicFile.WriteAllText(Path.Combine(componentFolder, "config.json"), json.ToString(Newtonsoft.Json.Formatting.Indented) + "\n");
    }

    /// <summary><c>text_embeds</c>: the projected pooled embedding [B, projection_dim].</summary>
    /// <param name="inputIds">int64 token ids [B, T].</param>
    public override Tensor forward(Tensor inputIds)
    {
        var (hidden, textEmbeds) = Encode(inputIds, LayerCount);
        hidden.Dispose();
        return textEmbeds;
    }

    /// <summary>
    /// One pass for SDXL's conditioning: transformers' <c>hidden_states[hiddenStateIndex]</c> (0 = embeddings, i = output
    /// of layer i, no final LayerNorm; SDXL takes <c>num_hidden_layers − 1</c>) and <c>text_embeds</c>.
    /// </summary>
    /// <param name="inputIds">int64 token ids [B, T].</param>
    /// <param name="hiddenStateIndex">Which hidden state to return, 0 … <c>num_hidden_layers</c>.</param>
    public (Tensor HiddenState, Tensor TextEmbeds) Encode(Tensor inputIds, int hiddenStateIndex)
    {
        if (hiddenStateIndex < 0 || hiddenStateIndex > LayerCount)
            throw new ArgumentOutOfRangeException(nameof(hiddenStateIndex), hiddenStateIndex, $"a {LayerCount}-layer encoder has hidden states 0 … {LayerCount}");
        var states = text_model.HiddenStates(inputIds, LayerCount);
        try
        {
            Tensor textEmbeds;
            using (var scope = NewDisposeScope())
            {
                using var last = text_model.FinalLayerNorm(states[^1]);
                textEmbeds = text_projection.call(Pool(last, inputIds)).MoveToOuterDisposeScope();
            }
            return (states[hiddenStateIndex].alias(), textEmbeds);
        }
        finally
        {
            foreach (var state in states) state.Dispose();
        }
    }

    /// <summary>transformers' <c>hidden_states</c>: the embeddings, then each layer's output, none through the final LayerNorm.</summary>
    public IReadOnlyList<Tensor> HiddenStates(Tensor inputIds) => text_model.HiddenStates(inputIds, LayerCount);

    /// <summary><c>last_hidden_state</c>: the last layer's output through <c>final_layer_norm</c>.</summary>
    public Tensor LastHiddenState(Tensor inputIds) => text_model.Encode(inputIds, LayerCount);

    /// <summary>
    /// <c>pooler_output</c>: <paramref name="lastHiddenState"/> [B, T, hidden] at each row's end-of-text position
    /// (<see cref="PooledIndex"/>).
    /// </summary>
    public Tensor Pool(Tensor lastHiddenState, Tensor inputIds)
    {
        using var index = PooledIndex(inputIds);
        using var rows = torch.arange(inputIds.shape[0], device: lastHiddenState.device);
        return lastHiddenState[rows, index.to(lastHiddenState.device)];
    }

    /// <summary>
    /// The end-of-text position of each row [B] (int64). With the legacy <c>eos_token_id</c> 2, transformers takes the
    /// largest id (the end-of-text token is CLIP's largest); otherwise the first position holding <c>eos_token_id</c>.
    /// </summary>
    public Tensor PooledIndex(Tensor inputIds)
    {
        if (EosTokenId == LegacyEosTokenId) return inputIds.argmax(-1);
        using var isEos = inputIds.eq(EosTokenId).to(ScalarType.Int32);
        return isEos.argmax(-1);
    }
}
