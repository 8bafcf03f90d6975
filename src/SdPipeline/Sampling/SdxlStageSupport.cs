using SdPipeline.Config;
using SdPipeline.Weights;

namespace SdPipeline.Sampling;

/// <summary>
/// Where the SDXL port stops today: the models, <c>sdpipe verify</c>, <see cref="StableDiffusionXLPipeline"/> and
/// <c>sdpipe model random</c> handle SDXL; the latent cache and the training stage (which would need both encoders'
/// states, the pooled embedding and the micro-conditioning in the cache) do not yet, and say so instead of caching
/// SD-style embeddings an SDXL UNet cannot use.
/// </summary>
public static class SdxlStageSupport
{
    /// <summary>Throws when <paramref name="model"/> is an SDXL folder, which <paramref name="stage"/> cannot handle yet.</summary>
    /// <exception cref="ConfigException">The model is SDXL.</exception>
    public static void RefuseSdxl(DiffusersFolder model, string stage)
    {
        if (StableDiffusionXLPipeline.IsSdxlFolder(model))
            throw new ConfigException(
                $"{stage}: {model.Root} is a Stable Diffusion XL model (it has text_encoder_2/); the {stage} stage supports SD 1.x/2.x only so far. " +
                "SDXL models load, verify (sdpipe verify) and sample through StableDiffusionXLPipeline, but the latent cache and training for SDXL " +
                "are not implemented yet; choose an SD 1.x/2.x model.base.");
    }
}
