using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;

namespace SdPipeline.Models.Unet;

/// <summary>
/// The architecture of a <see cref="UNet2DConditionModel"/>, as diffusers' <c>UNet2DConditionModel.__init__</c>
/// takes it from <c>unet/config.json</c>. Property defaults are the Python defaults, so a config that omits a key
/// (Stable Diffusion 1.5's published one omits many) means what it means in diffusers. Only the Stable Diffusion
/// 1.x/2.x code path is ported: keys selecting anything else are refused by <see cref="Parse"/> with the key and value.
/// </summary>
public sealed record UNet2DConditionConfig
{
    /// <summary>The <c>_class_name</c> diffusers writes for this model.</summary>
    public const string ClassName = "UNet2DConditionModel";

    /// <summary>Nominal latent size (informational; one element = square). Null when absent.</summary>
    [DiffusersKey("sample_size", ScalarOrList = true)]
    public IReadOnlyList<int>? SampleSize { get; init; }

    /// <summary>Latent channels in.</summary>
    [DiffusersKey("in_channels")]
    public int InChannels { get; init; } = 4;

    /// <summary>Channels predicted.</summary>
    [DiffusersKey("out_channels")]
    public int OutChannels { get; init; } = 4;

    /// <summary>Maps the input from [0, 1] to [-1, 1] first.</summary>
    [DiffusersKey("center_input_sample")]
    public bool CenterInputSample { get; init; }

    /// <summary>Timestep embedding order: cos half first when true.</summary>
    [DiffusersKey("flip_sin_to_cos")]
    public bool FlipSinToCos { get; init; } = true;

    /// <summary>Timestep embedding <c>downscale_freq_shift</c>.</summary>
    [DiffusersKey("freq_shift")]
    public int FreqShift { get; init; }

    /// <summary><c>CrossAttnDownBlock2D</c> or <c>DownBlock2D</c>, one per resolution.</summary>
    [DiffusersKey("down_block_types")]
    public IReadOnlyList<string> DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];

    /// <summary>Only <c>UNetMidBlock2DCrossAttn</c>.</summary>
    [DiffusersKey("mid_block_type")]
    public string MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";

    /// <summary><c>CrossAttnUpBlock2D</c> or <c>UpBlock2D</c>, deepest first.</summary>
    [DiffusersKey("up_block_types")]
    public IReadOnlyList<string> UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];

    /// <summary>Channels of each down block.</summary>
    [DiffusersKey("block_out_channels")]
    public IReadOnlyList<int> BlockOutChannels { get; init; } = [320, 640, 1280, 1280];

    /// <summary>Resnets per down block (up blocks have one more).</summary>
    [DiffusersKey("layers_per_block", UniformList = true)]
    public int LayersPerBlock { get; init; } = 2;

    /// <summary>Padding of the stride-2 downsampling convolutions.</summary>
    [DiffusersKey("downsample_padding")]
    public int DownsamplePadding { get; init; } = 1;

    /// <summary>Output scale of the mid block's resnets.</summary>
    [DiffusersKey("mid_block_scale_factor", WholeAsInteger = true)]
    public double MidBlockScaleFactor { get; init; } = 1;

    /// <summary>Dropout inside the resnets (diffusers passes it nowhere else in these blocks).</summary>
    [DiffusersKey("dropout")]
    public double Dropout { get; init; }

    /// <summary>Activation: <c>silu</c> (<c>swish</c> is diffusers' alias of it).</summary>
    [DiffusersKey("act_fn")]
    public string ActFn { get; init; } = "silu";

    /// <summary>GroupNorm groups.</summary>
    [DiffusersKey("norm_num_groups")]
    public int NormNumGroups { get; init; } = 32;

    /// <summary>Epsilon of the resnet and output GroupNorms (the transformers' GroupNorm uses 1e-6).</summary>
    [DiffusersKey("norm_eps")]
    public double NormEps { get; init; } = 1e-5;

    /// <summary>Width of the text embeddings (768 for SD 1.x, 1024 for SD 2.x).</summary>
    [DiffusersKey("cross_attention_dim", UniformList = true)]
    public int CrossAttentionDim { get; init; } = 1280;

    /// <summary>
    /// Transformer blocks per <c>Transformer2DModel</c>, per down block (SDXL: [1, 2, 10]); one element = the same for
    /// every block. The mid block uses the last entry, the up blocks the reversed list.
    /// </summary>
    [DiffusersKey("transformer_layers_per_block", ScalarOrList = true)]
    public IReadOnlyList<int> TransformerLayersPerBlock { get; init; } = [1];

    /// <summary>
    /// Despite its name, the NUMBER OF HEADS per down block (diffusers' historical naming, kept because 40,000+
    /// configs use it): SD 1.5's 8 means 8 heads of 40/80/160 channels. One element = same for every block;
    /// the up blocks use the reversed list.
    /// </summary>
    [DiffusersKey("attention_head_dim", ScalarOrList = true)]
    public IReadOnlyList<int> AttentionHeadDim { get; init; } = [8];

    /// <summary>
    /// Heads per down block under its correct name; when set it wins over <see cref="AttentionHeadDim"/>. (diffusers
    /// 0.40 itself still refuses this key pending the rename; it is accepted here with that intended meaning.)
    /// </summary>
    [DiffusersKey("num_attention_heads", ScalarOrList = true)]
    public IReadOnlyList<int>? NumAttentionHeads { get; init; }

    /// <summary>Transformer <c>proj_in</c>/<c>proj_out</c> are Linear (SD 2.x) instead of 1×1 convolutions.</summary>
    [DiffusersKey("use_linear_projection")]
    public bool UseLinearProjection { get; init; }

    /// <summary>Attention computed in float32 when the model runs in half precision (SD 2.1 sets it).</summary>
    [DiffusersKey("upcast_attention", NullIsFalse = true)]
    public bool UpcastAttention { get; init; }

    /// <summary>Time embedding width; null = 4 × <c>BlockOutChannels[0]</c>.</summary>
    [DiffusersKey("time_embedding_dim")]
    public int? TimeEmbeddingDim { get; init; }

    /// <summary>
    /// The added embedding: null (SD 1.x/2.x) or <c>text_time</c> (SDXL: the pooled text embedding and six
    /// micro-conditioning ids, embedded and added to the timestep embedding).
    /// </summary>
    [DiffusersKey("addition_embed_type")]
    public string? AdditionEmbedType { get; init; }

    /// <summary>Sinusoid width of each <c>text_time</c> id (SDXL: 256).</summary>
    [DiffusersKey("addition_time_embed_dim")]
    public int? AdditionTimeEmbedDim { get; init; }

    /// <summary>Input width of <c>add_embedding</c>: pooled text width + 6 × <see cref="AdditionTimeEmbedDim"/> (SDXL: 2816).</summary>
    [DiffusersKey("projection_class_embeddings_input_dim")]
    public int? ProjectionClassEmbeddingsInputDim { get; init; }

    /// <summary>Kernel of <c>conv_in</c>.</summary>
    [DiffusersKey("conv_in_kernel")]
    public int ConvInKernel { get; init; } = 3;

    /// <summary>Kernel of <c>conv_out</c>.</summary>
    [DiffusersKey("conv_out_kernel")]
    public int ConvOutKernel { get; init; } = 3;

    /// <summary>Keys in the file that diffusers does not know either; reported so that callers can warn.</summary>
    public IReadOnlyList<string> UnknownKeys { get; init; } = [];

    /// <summary>Keys that do not change these blocks' computation, kept as written so that saving reproduces them.</summary>
    internal IReadOnlyDictionary<string, JToken> InertKeys { get; init; } = DefaultInertKeys();

    /// <summary>Time embedding width actually used.</summary>
    public int TimeEmbedDim => TimeEmbeddingDim ?? BlockOutChannels[0] * 4;

    /// <summary>Attention heads of down block <paramref name="index"/> (the mid block uses the last one).</summary>
    public int HeadsOfDownBlock(int index)
    {
        var heads = NumAttentionHeads ?? AttentionHeadDim;
        return heads.Count == 1 ? heads[0] : heads[index];
    }

    /// <summary>Transformer blocks in each attention of down block <paramref name="index"/> (the mid block uses the last one).</summary>
    public int TransformerLayersOfDownBlock(int index) =>
        TransformerLayersPerBlock.Count == 1 ? TransformerLayersPerBlock[0] : TransformerLayersPerBlock[index];

    /// <summary>Whether the UNet takes SDXL's added conditions (pooled text embedding and time ids).</summary>
    public bool HasTextTimeEmbedding => AdditionEmbedType == "text_time";

    // Keys whose only supported value is the diffusers default; anything else needs code this port lacks.
    private static readonly (string Key, JToken Default)[] Unported =
    [
        ("encoder_hid_dim", JValue.CreateNull()),
        ("encoder_hid_dim_type", JValue.CreateNull()),
        ("dual_cross_attention", false),
        ("class_embed_type", JValue.CreateNull()),
        ("num_class_embeds", JValue.CreateNull()),
        ("resnet_time_scale_shift", "default"),
        ("time_embedding_type", "positional"),
        ("time_embedding_act_fn", JValue.CreateNull()),
        ("timestep_post_act", JValue.CreateNull()),
        ("time_cond_proj_dim", JValue.CreateNull()),
        ("attention_type", "default"),
        ("reverse_transformer_layers_per_block", JValue.CreateNull()),
    ];

    // Keys only other block types (or the embeddings refused above) read.
    private static readonly (string Key, JToken Default)[] Inert =
    [
        ("addition_embed_type_num_heads", 64),
        ("class_embeddings_concat", false),
        ("mid_block_only_cross_attention", JValue.CreateNull()),
        ("cross_attention_norm", JValue.CreateNull()),
        ("resnet_skip_time_act", false),
        ("resnet_out_scale_factor", 1.0),
    ];

    private static Dictionary<string, JToken> DefaultInertKeys() => Inert.ToDictionary(p => p.Key, p => p.Default.DeepClone());

    /// <summary>Reads and validates a <c>config.json</c>.</summary>
    /// <exception cref="DiffusersConfigException">Malformed or unsupported values, named by key.</exception>
    public static UNet2DConditionConfig Load(string path) => Parse(DiffusersConfigReader.ReadFile(path), path);

    /// <summary>Reads and validates a config; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="DiffusersConfigException">Malformed or unsupported values, named by key.</exception>
    public static UNet2DConditionConfig Parse(JObject json, string source)
    {
        var read = new DiffusersConfigReader(json, source);
        foreach (var (key, value) in Unported) read.RequireDefault(key, value);

        // A per-block list of all false is the same as false.
        var onlyCross = json["only_cross_attention"];
        if (onlyCross is not null && !(onlyCross.Type == JTokenType.Boolean && !onlyCross.Value<bool>())
            && !(onlyCross is JArray flags && flags.All(f => f.Type == JTokenType.Boolean && !f.Value<bool>())))
            throw read.Unsupported("only_cross_attention", onlyCross, "false");
        read.Inert("only_cross_attention", false);

        var config = read.Keys<UNet2DConditionConfig>() with
        {
            InertKeys = Inert.ToDictionary(p => p.Key, p => read.Inert(p.Key, p.Default)),
        };
        config = config with { UnknownKeys = read.UnknownKeys() };
        config.Validate(source);
        return config;
    }

    /// <summary>Checks the values against each other and against what is ported.</summary>
    /// <exception cref="DiffusersConfigException">The first problem found, naming the key.</exception>
    public void Validate(string source = "unet config")
    {
        DiffusersConfigException Bad(string key, string problem) => new($"{source}: \"{key}\": {problem}");
        string List<T>(IEnumerable<T> values) => $"[{string.Join(", ", values)}]";

        int blocks = DownBlockTypes.Count;
        if (blocks == 0) throw Bad("down_block_types", "at least one block is needed");
        if (UpBlockTypes.Count != blocks)
            throw Bad("up_block_types", $"{UpBlockTypes.Count} up blocks for {blocks} down blocks; they must match (down_block_types {List(DownBlockTypes)})");
        if (BlockOutChannels.Count != blocks)
            throw Bad("block_out_channels", $"{List(BlockOutChannels)} has {BlockOutChannels.Count} entries for {blocks} down blocks");
        foreach (string type in DownBlockTypes)
            if (type is not ("CrossAttnDownBlock2D" or "DownBlock2D"))
                throw Bad("down_block_types", $"\"{type}\" is not supported (supported: CrossAttnDownBlock2D, DownBlock2D)");
        foreach (string type in UpBlockTypes)
            if (type is not ("CrossAttnUpBlock2D" or "UpBlock2D"))
                throw Bad("up_block_types", $"\"{type}\" is not supported (supported: CrossAttnUpBlock2D, UpBlock2D)");
        if (MidBlockType != "UNetMidBlock2DCrossAttn")
            throw Bad("mid_block_type", $"\"{MidBlockType}\" is not supported (supported: UNetMidBlock2DCrossAttn)");
        if (ActFn is not ("silu" or "swish"))
            throw Bad("act_fn", $"\"{ActFn}\" is not supported (supported: silu)");

        string headsKey = NumAttentionHeads is null ? "attention_head_dim" : "num_attention_heads";
        var heads = NumAttentionHeads ?? AttentionHeadDim;
        if (heads.Count != 1 && heads.Count != blocks)
            throw Bad(headsKey, $"{List(heads)} has {heads.Count} entries for {blocks} down blocks");
        if (AttentionHeadDim.Count != 1 && AttentionHeadDim.Count != blocks)
            throw Bad("attention_head_dim", $"{List(AttentionHeadDim)} has {AttentionHeadDim.Count} entries for {blocks} down blocks");

        for (int i = 0; i < blocks; i++)
        {
            int channels = BlockOutChannels[i];
            if (channels <= 0 || channels % NormNumGroups != 0)
                throw Bad("block_out_channels", $"{channels} is not a positive multiple of norm_num_groups {NormNumGroups}");
            bool attends = DownBlockTypes[i] == "CrossAttnDownBlock2D" || UpBlockTypes[blocks - 1 - i] == "CrossAttnUpBlock2D" || i == blocks - 1;
            if (attends && (HeadsOfDownBlock(i) <= 0 || channels % HeadsOfDownBlock(i) != 0))
                throw Bad(headsKey, $"{HeadsOfDownBlock(i)} heads do not divide block {i}'s {channels} channels (in this key diffusers means the number of heads)");
        }
        if (LayersPerBlock < 1) throw Bad("layers_per_block", $"{LayersPerBlock} must be at least 1");
        if (TransformerLayersPerBlock.Count != 1 && TransformerLayersPerBlock.Count != blocks)
            throw Bad("transformer_layers_per_block", $"{List(TransformerLayersPerBlock)} has {TransformerLayersPerBlock.Count} entries for {blocks} down blocks");
        if (TransformerLayersPerBlock.Any(n => n < 1))
            throw Bad("transformer_layers_per_block", $"{List(TransformerLayersPerBlock)}: every entry must be at least 1");
        ValidateAdditionEmbedding(Bad);
        if (ConvInKernel % 2 == 0) throw Bad("conv_in_kernel", $"{ConvInKernel} must be odd");
        if (ConvOutKernel % 2 == 0) throw Bad("conv_out_kernel", $"{ConvOutKernel} must be odd");
        if (Dropout is < 0 or >= 1) throw Bad("dropout", $"{Dropout} must be in [0, 1)");
    }

    // SDXL's added conditioning; diffusers' other addition types (text, image, text_image, image_hint) are not ported.
    private void ValidateAdditionEmbedding(Func<string, string, DiffusersConfigException> bad)
    {
        if (AdditionEmbedType is null) return;
        if (AdditionEmbedType != "text_time")
            throw bad("addition_embed_type", $"\"{AdditionEmbedType}\" is not supported (supported: null, text_time)");
        if (AdditionTimeEmbedDim is not > 0)
            throw bad("addition_time_embed_dim", $"{AdditionTimeEmbedDim?.ToString() ?? "null"}: addition_embed_type text_time needs a positive width");
        if (ProjectionClassEmbeddingsInputDim is not int inputDim || inputDim <= 6 * AdditionTimeEmbedDim)
            throw bad("projection_class_embeddings_input_dim",
                $"{ProjectionClassEmbeddingsInputDim?.ToString() ?? "null"}: must be the pooled text width plus 6 × addition_time_embed_dim ({6 * AdditionTimeEmbedDim})");
    }

    /// <summary>
    /// The config as diffusers' <c>save_config</c> writes it: every <c>__init__</c> key, sorted, with
    /// <c>_class_name</c> and <c>_diffusers_version</c>.
    /// </summary>
    public JObject ToJson()
    {
        var keys = DiffusersConfigWriter.Keys(this);
        keys["only_cross_attention"] = false;
        foreach (var (key, value) in Unported) keys[key] = value.DeepClone();
        foreach (var (key, value) in InertKeys) keys[key] = value.DeepClone();
        return DiffusersConfigWriter.WithHeader(ClassName, keys);
    }
}
