using Newtonsoft.Json.Linq;
using SdPipeline.Models.Shared;

namespace SdPipeline.Models.Vae;

/// <summary>
/// The architecture of an <see cref="AutoencoderKL"/>, as diffusers' <c>AutoencoderKL.__init__</c> takes it from
/// <c>vae/config.json</c>; property defaults are the Python defaults (a missing key means the default).
/// </summary>
public sealed record AutoencoderKLConfig
{
    /// <summary>The <c>_class_name</c> diffusers writes for this model.</summary>
    public const string ClassName = "AutoencoderKL";

    /// <summary>Image channels in.</summary>
    [DiffusersKey("in_channels")]
    public int InChannels { get; init; } = 3;

    /// <summary>Image channels out.</summary>
    [DiffusersKey("out_channels")]
    public int OutChannels { get; init; } = 3;

    /// <summary>Only <c>DownEncoderBlock2D</c>, one per resolution.</summary>
    [DiffusersKey("down_block_types")]
    public IReadOnlyList<string> DownBlockTypes { get; init; } = ["DownEncoderBlock2D"];

    /// <summary>Only <c>UpDecoderBlock2D</c>, one per resolution.</summary>
    [DiffusersKey("up_block_types")]
    public IReadOnlyList<string> UpBlockTypes { get; init; } = ["UpDecoderBlock2D"];

    /// <summary>Channels of each encoder block (the decoder uses them reversed).</summary>
    [DiffusersKey("block_out_channels")]
    public IReadOnlyList<int> BlockOutChannels { get; init; } = [64];

    /// <summary>Resnets per encoder block (decoder blocks have one more).</summary>
    [DiffusersKey("layers_per_block")]
    public int LayersPerBlock { get; init; } = 1;

    /// <summary>Activation: <c>silu</c> (<c>swish</c> is diffusers' alias of it).</summary>
    [DiffusersKey("act_fn")]
    public string ActFn { get; init; } = "silu";

    /// <summary>Latent channels.</summary>
    [DiffusersKey("latent_channels")]
    public int LatentChannels { get; init; } = 4;

    /// <summary>GroupNorm groups.</summary>
    [DiffusersKey("norm_num_groups")]
    public int NormNumGroups { get; init; } = 32;

    /// <summary>Nominal image size (informational; one element = square).</summary>
    [DiffusersKey("sample_size", ScalarOrList = true)]
    public IReadOnlyList<int>? SampleSize { get; init; } = [32];

    /// <summary>Latents are multiplied by it after encoding (training) and divided before decoding (sampling); not applied inside the model.</summary>
    [DiffusersKey("scaling_factor")]
    public double ScalingFactor { get; init; } = 0.18215;

    /// <summary>Subtracted from latents before scaling (newer VAEs; null for SD 1.x/2.x); not applied inside the model.</summary>
    [DiffusersKey("shift_factor")]
    public double? ShiftFactor { get; init; }

    /// <summary>Per-channel latent means some VAEs publish; with <see cref="LatentsStd"/>, diffusers' SDXL pipeline (not SD's) adds them back before decoding.</summary>
    [DiffusersKey("latents_mean")]
    public IReadOnlyList<double>? LatentsMean { get; init; }

    /// <summary>Per-channel latent standard deviations some VAEs publish; see <see cref="LatentsMean"/>.</summary>
    [DiffusersKey("latents_std")]
    public IReadOnlyList<double>? LatentsStd { get; init; }

    /// <summary>Run this VAE in float32 even when the rest of a pipeline is half precision (advice to callers).</summary>
    [DiffusersKey("force_upcast")]
    public bool ForceUpcast { get; init; } = true;

    /// <summary>A 1×1 <c>quant_conv</c> after the encoder.</summary>
    [DiffusersKey("use_quant_conv")]
    public bool UseQuantConv { get; init; } = true;

    /// <summary>A 1×1 <c>post_quant_conv</c> before the decoder.</summary>
    [DiffusersKey("use_post_quant_conv")]
    public bool UsePostQuantConv { get; init; } = true;

    /// <summary>Self-attention in the encoder's and decoder's mid blocks.</summary>
    [DiffusersKey("mid_block_add_attention")]
    public bool MidBlockAddAttention { get; init; } = true;

    /// <summary>Image pixels per latent pixel along each side, 2^(blocks − 1): diffusers' pipelines' <c>vae_scale_factor</c> (8 for SD).</summary>
    public int VaeScaleFactor => 1 << (BlockOutChannels.Count - 1);

    /// <summary>Keys in the file that diffusers does not know either; reported so that callers can warn.</summary>
    public IReadOnlyList<string> UnknownKeys { get; init; } = [];

    /// <summary>Reads and validates a <c>config.json</c>.</summary>
    /// <exception cref="DiffusersConfigException">Malformed or unsupported values, named by key.</exception>
    public static AutoencoderKLConfig Load(string path) => Parse(DiffusersConfigReader.ReadFile(path), path);

    /// <summary>Reads and validates a config; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="DiffusersConfigException">Malformed or unsupported values, named by key.</exception>
    public static AutoencoderKLConfig Parse(JObject json, string source)
    {
        var read = new DiffusersConfigReader(json, source);
        var config = read.Keys<AutoencoderKLConfig>() with { UnknownKeys = read.UnknownKeys() };
        config.Validate(source);
        return config;
    }

    /// <summary>Checks the values against each other and against what is ported.</summary>
    /// <exception cref="DiffusersConfigException">The first problem found, naming the key.</exception>
    public void Validate(string source = "vae config")
    {
        DiffusersConfigException Bad(string key, string problem) => new($"{source}: \"{key}\": {problem}");

        int blocks = BlockOutChannels.Count;
        if (blocks == 0) throw Bad("block_out_channels", "at least one block is needed");
        if (DownBlockTypes.Count != blocks)
            throw Bad("down_block_types", $"{DownBlockTypes.Count} down blocks for {blocks} block_out_channels");
        if (UpBlockTypes.Count != blocks)
            throw Bad("up_block_types", $"{UpBlockTypes.Count} up blocks for {blocks} block_out_channels");
        foreach (string type in DownBlockTypes)
            if (type != "DownEncoderBlock2D") throw Bad("down_block_types", $"\"{type}\" is not supported (supported: DownEncoderBlock2D)");
        foreach (string type in UpBlockTypes)
            if (type != "UpDecoderBlock2D") throw Bad("up_block_types", $"\"{type}\" is not supported (supported: UpDecoderBlock2D)");
        if (ActFn is not ("silu" or "swish")) throw Bad("act_fn", $"\"{ActFn}\" is not supported (supported: silu)");
        foreach (int channels in BlockOutChannels)
            if (channels <= 0 || channels % NormNumGroups != 0)
                throw Bad("block_out_channels", $"{channels} is not a positive multiple of norm_num_groups {NormNumGroups}");
        if (LayersPerBlock < 1) throw Bad("layers_per_block", $"{LayersPerBlock} must be at least 1");
        if (LatentChannels < 1) throw Bad("latent_channels", $"{LatentChannels} must be at least 1");
    }

    /// <summary>The config as diffusers' <c>save_config</c> writes it: every <c>__init__</c> key, sorted.</summary>
    public JObject ToJson()
    {
        return DiffusersConfigWriter.WithHeader(ClassName, DiffusersConfigWriter.Keys(this));
    }
}
