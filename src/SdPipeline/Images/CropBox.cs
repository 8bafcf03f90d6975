namespace SdPipeline.Images;

/// <summary>A crop rectangle in the resized image, recorded in the latent index.</summary>
/// <param name="Left">Left edge in pixels.</param>
/// <param name="Top">Top edge in pixels.</param>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
public sealed record CropBox(int Left, int Top, int Width, int Height);
