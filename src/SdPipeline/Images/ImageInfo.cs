namespace SdPipeline.Images;

/// <summary>What an image file's header says.</summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Extension">File extension of its format, without the dot (png, jpg, webp, …).</param>
public sealed record ImageInfo(int Width, int Height, string Extension);
