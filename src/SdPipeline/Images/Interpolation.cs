namespace SdPipeline.Images;

/// <summary>The resampling filters of diffusers' <c>--image_interpolation_mode</c> that this tool supports.</summary>
public enum Interpolation
{
    /// <summary>Lanczos (a = 3), the training script's default.</summary>
    Lanczos,

    /// <summary>Bilinear (triangle filter, widened when downsampling).</summary>
    Bilinear,

    /// <summary>Bicubic (a = -0.5, widened when downsampling).</summary>
    Bicubic,
}
