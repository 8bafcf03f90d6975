using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>
/// Which family a diffusers folder is: the latents, train and sample stages read an SDXL folder (both text encoders, the
/// pooled embedding and the micro-conditioning) differently from an SD 1.x/2.x one. Here, below all of them.
/// </summary>
public static class SdxlStageSupport
{
    /// <summary>Whether <paramref name="folder"/> is an SDXL folder (it has <c>text_encoder_2/</c>).</summary>
    public static bool IsSdxlFolder(DiffusersFolder folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        return Directory.Exists(Path.Combine(folder.Root, "text_encoder_2"));
    }
}
