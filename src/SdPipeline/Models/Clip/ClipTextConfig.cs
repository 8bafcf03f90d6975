using SdPipeline.Models.Shared;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Models.Clip;

/// <summary>
/// The architecture of a CLIP text encoder, as transformers' <c>CLIPTextConfig</c> writes it to
/// <c>text_encoder/config.json</c>. Defaults are <c>CLIPTextConfig.__init__</c>'s; SD 1.x is hidden 768, 12 layers,
/// 12 heads, 3072, quick_gelu; SD 2.x is hidden 1024, 23 layers, 16 heads, 4096, gelu.
/// </summary>
/// <remarks>
/// Keys that do not change the text encoder's output are accepted and ignored: the init and dropout settings (SD
/// runs the encoder in eval mode) and <c>bos/pad_token_id</c>. <c>projection_dim</c> and <c>eos_token_id</c> are
/// read because <c>CLIPTextModelWithProjection</c> (SDXL's second encoder) uses them; a <c>CLIPTextModel</c> has no
/// projection and ignores both (SD 1.5's file has the stale ids 0/2/1; its tokenizer uses 49406/49407).
/// </remarks>
public sealed record ClipTextConfig
{
    private static readonly HashSet<string> s_ignoredKeys =
    [
        "bos_token_id", "pad_token_id",
        "initializer_range", "initializer_factor", "dropout", "attention_dropout",
        "architectures", "model_type", "torch_dtype", "transformers_version", "_name_or_path",
    ];

    /// <summary>Token embedding rows.</summary>
    [DiffusersKey("vocab_size")]
    public int VocabSize { get; init; } = 49408;

    /// <summary>Width of every hidden state.</summary>
    [DiffusersKey("hidden_size")]
    public int HiddenSize { get; init; } = 512;

    /// <summary>Width of the MLP's hidden layer.</summary>
    [DiffusersKey("intermediate_size")]
    public int IntermediateSize { get; init; } = 2048;

    /// <summary>Number of encoder layers.</summary>
    [DiffusersKey("num_hidden_layers")]
    public int NumHiddenLayers { get; init; } = 12;

    /// <summary>Attention heads per layer; must divide <see cref="HiddenSize"/>.</summary>
    [DiffusersKey("num_attention_heads")]
    public int NumAttentionHeads { get; init; } = 8;

    /// <summary>Positions the model has embeddings for, the longest input.</summary>
    [DiffusersKey("max_position_embeddings")]
    public int MaxPositionEmbeddings { get; init; } = 77;

    /// <summary>The MLP activation: <c>quick_gelu</c> (SD 1.x) or <c>gelu</c> (SD 2.x).</summary>
    [DiffusersKey("hidden_act")]
    public string HiddenAct { get; init; } = "quick_gelu";

    /// <summary>Epsilon of every LayerNorm.</summary>
    [DiffusersKey("layer_norm_eps")]
    public double LayerNormEps { get; init; } = 1e-5;

    /// <summary>Width of the text projection; only <c>CLIPTextModelWithProjection</c> has one.</summary>
    [DiffusersKey("projection_dim")]
    public int ProjectionDim { get; init; } = 512;

    /// <summary>
    /// The end-of-text token id; only <c>CLIPTextModelWithProjection</c>'s pooling reads it (the
    /// legacy 2 means "pool at the highest token id", as transformers does for configs written before the id was right).
    /// </summary>
    [DiffusersKey("eos_token_id")]
    public int EosTokenId { get; init; } = 2;

    /// <summary>Reads and validates a <c>config.json</c>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="warn">Told about each key this config does not know (and ignores).</param>
    /// <exception cref="DiffusersConfigException">Malformed JSON or an invalid value; the message names the file and key.</exception>
    public static ClipTextConfig Load(string path, Action<string>? warn = null) =>
        File.Exists(path)
            ? Parse(File.ReadAllText(path), path, warn)
            : throw new FileNotFoundException($"{path}: text encoder config not found", path);

    /// <summary>Parses and validates config JSON; <paramref name="source"/> names it in messages.</summary>
    public static ClipTextConfig Parse(string json, string source, Action<string>? warn = null)
    {
        JObject obj;
        try
        {
            obj = JObject.Parse(json);
        }
        catch (JsonException e)
        {
            throw new DiffusersConfigException($"{source}: not a valid CLIP text config: {e.Message}", e);
        }
        var read = new DiffusersConfigReader(obj, source);
        var config = read.Keys<ClipTextConfig>();
        foreach (string key in read.UnknownKeys().Where(k => !s_ignoredKeys.Contains(k)))
            warn?.Invoke($"{source}: key '{key}' is not part of a CLIP text encoder's architecture and is ignored");
        config.Validate(source);
        return config;
    }

    /// <summary>
    /// The config as transformers writes it for a <c>CLIPTextModel</c> (its keys plus the class bookkeeping), with
    /// the token ids of the given vocabulary, so transformers and this tool both load the saved folder.
    /// </summary>
    public JObject ToJson(int bosTokenId, int eosTokenId, int padTokenId)
    {
        var keys = DiffusersConfigWriter.Keys(this);
        keys["eos_token_id"] = eosTokenId;
        // A CLIPTextModel has no projection and transformers ignores the key; it has always been written as the width.
        keys["projection_dim"] = HiddenSize;
        keys["architectures"] = new JArray("CLIPTextModel");
        keys["model_type"] = "clip_text_model";
        keys["torch_dtype"] = "float32";
        keys["bos_token_id"] = bosTokenId;
        keys["pad_token_id"] = padTokenId;
        keys["attention_dropout"] = 0.0;
        keys["dropout"] = 0.0;
        keys["initializer_factor"] = 1.0;
        keys["initializer_range"] = 0.02;
        return new JObject(keys.Properties().OrderBy(p => p.Name, StringComparer.Ordinal));
    }

    /// <summary>Throws when a value cannot describe a CLIP text encoder, quoting the key and value.</summary>
    public void Validate(string source)
    {
        void Positive(string key, int value)
        {
            if (value <= 0) throw new DiffusersConfigException($"{source}: {key} must be positive, found {value}");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (HiddenSize % NumAttentionHeads != 0)
            throw new DiffusersConfigException($"{source}: hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        if (!(LayerNormEps > 0))
            throw new DiffusersConfigException($"{source}: layer_norm_eps must be positive, found {LayerNormEps}");
        if (HiddenAct is not ("quick_gelu" or "gelu"))
            throw new DiffusersConfigException($"{source}: hidden_act '{HiddenAct}' is not supported (supported: quick_gelu, gelu)");
    }
}
