using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;

namespace SdPipeline.Benchmarks;

/// <summary>
/// The Stable Diffusion 1.5 architectures, built in so that benchmarks need no download: the same models diffusers
/// builds from <c>runwayml/stable-diffusion-v1-5</c>'s <c>unet/config.json</c> and <c>vae/config.json</c>.
/// </summary>
public static class Sd15Configs
{
    /// <summary>The SD 1.5 UNet (859,520,964 parameters): diffusers' defaults with 768-wide text embeddings.</summary>
    public static UNet2DConditionConfig Unet => new() { SampleSize = [64], CrossAttentionDim = 768 };

    /// <summary>The SD 1.5 VAE (83,653,863 parameters): four blocks of 128/256/512/512 channels, two resnets each.</summary>
    public static AutoencoderKLConfig Vae => new()
    {
        BlockOutChannels = [128, 256, 512, 512],
        DownBlockTypes = ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
        UpBlockTypes = ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
        LayersPerBlock = 2,
        SampleSize = [512],
    };
}
