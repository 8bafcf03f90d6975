using SdPipeline.Config;
using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>
/// Where the SDXL port stops today: the models, <c>sdpipe verify</c>, <c>StableDiffusionXLPipeline</c> and
/// <c>sdpipe model random</c> handle SDXL; the latent cache and the training stage (which would need both encoders'
/// states, the pooled embedding and the micro-conditioning in the cache) do not yet, and say so instead of caching
/// SD-style embeddings an SDXL UNet cannot use. Here, below the latents and train stages that refuse SDXL and the
/// sampling code that handles it.
/// </summary>
public static class SdxlStageSupport
{
    /// <summary>Whether <paramref name="folder"/> is an SDXL folder (it has <c>text_encoder_2/</c>).</summary>
    public static bool IsSdxlFolder(DiffusersFolder folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return Directory.Exists(Path.Combine(folder.Root, "text_encoder_2"));
    }

    /// <summary>Throws when <paramref name="model"/> is an SDXL folder, which <paramref name="stage"/> cannot handle yet.</summary>
    /// <exception cref="ConfigException">The model is SDXL.</exception>
    public static void RefuseSdxl(DiffusersFolder model, string stage)
    {
        if (IsSdxlFolder(model))
            throw new ConfigException(
                $"{stage}: {model.Root} is a Stable Diffusion XL model (it has text_encoder_2/); the {stage} stage supports SD 1.x/2.x only so far. " +
                "SDXL models load, verify (sdpipe verify) and sample through StableDiffusionXLPipeline, but the latent cache and training for SDXL " +
                "are not implemented yet; choose an SD 1.x/2.x model.base.");
    }
}
