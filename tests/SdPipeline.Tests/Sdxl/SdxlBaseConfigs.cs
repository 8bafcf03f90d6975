using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;

namespace SdPipeline.Tests.Sdxl;

/// <summary>
/// The component configs of <c>stabilityai/stable-diffusion-xl-base-1.0</c> (its <c>unet/</c>, <c>text_encoder/</c> and
/// <c>text_encoder_2/</c> <c>config.json</c>, the architecture keys), for building the full-size graph on the meta device.
/// </summary>
internal static class SdxlBaseConfigs
{
    public const string Unet = """
        {
          "_class_name": "UNet2DConditionModel", "act_fn": "silu", "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
          "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "center_input_sample": false,
          "class_embed_type": null, "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 2048,
          "cross_attention_norm": null, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], "downsample_padding": 1,
          "dual_cross_attention": false, "encoder_hid_dim": null, "encoder_hid_dim_type": null, "flip_sin_to_cos": true, "freq_shift": 0,
          "in_channels": 4, "layers_per_block": 2, "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1,
          "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32, "num_attention_heads": null,
          "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4, "projection_class_embeddings_input_dim": 2816,
          "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false, "resnet_time_scale_shift": "default", "sample_size": 128,
          "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null, "time_embedding_type": "positional",
          "timestep_post_act": null, "transformer_layers_per_block": [1, 2, 10], "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
          "upcast_attention": null, "use_linear_projection": true
        }
        """;

    public const string TextEncoder = """
        {
          "architectures": ["CLIPTextModel"], "hidden_act": "quick_gelu", "hidden_size": 768, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
          "max_position_embeddings": 77, "num_attention_heads": 12, "num_hidden_layers": 12, "projection_dim": 768, "vocab_size": 49408,
          "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1
        }
        """;

    public const string TextEncoder2 = """
        {
          "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280, "intermediate_size": 5120, "layer_norm_eps": 1e-05,
          "max_position_embeddings": 77, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280, "vocab_size": 49408,
          "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1
        }
        """;

    /// <summary>Writes the three configs as <c>COMPONENT/config.json</c> under <paramref name="temp"/>; returns the folder.</summary>
    public static string Write(TempFolder temp)
    {
        foreach (var (component, json) in new[] { ("unet", Unet), ("text_encoder", TextEncoder), ("text_encoder_2", TextEncoder2) })
        {
            Directory.CreateDirectory(temp.File(component));
            File.WriteAllText(temp.File($"{component}/config.json"), JObject.Parse(json).ToString());
        }
        return temp.Path;
    }
}
