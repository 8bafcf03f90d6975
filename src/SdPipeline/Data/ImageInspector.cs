using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;

namespace SdPipeline.Data;

/// <summary>What <see cref="ImageInspector.Inspect"/> learned about an encoded image.</summary>
/// <param name="Width">Width in pixels.</param>
/// <param name="Height">Height in pixels.</param>
/// <param name="Extension">File extension of its format, without the dot (png, jpg, webp…).</param>
public sealed record ImageFacts(int Width, int Height, string Extension);

/// <summary>Checks that bytes are a decodable image of acceptable size, reading the header before decoding pixels.</summary>
public static class ImageInspector
{
    /// <summary>
    /// Returns the image's facts, or a reason to skip it: undecodable, too many pixels (checked from the header,
    /// before any pixel buffer is allocated), or a shorter side below <paramref name="minSide"/>.
    /// </summary>
    public static (ImageFacts? Facts, string? Problem) Inspect(byte[] bytes, int minSide, long maxPixels)
    {
        IImageFormat? format;
        IImageInfo? info;
        try
        {
            info = Image.Identify(bytes, out format);
        }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or NotSupportedException or ImageFormatException)
        {
            return (null, $"undecodable image: {e.Message}");
        }
        if (info is null || format is null) return (null, "undecodable image: unknown format");
        long pixels = (long)info.Width * info.Height;
        if (pixels > maxPixels)
            return (null, $"too many pixels: {info.Width}x{info.Height} > download.max_pixels {maxPixels}");
        if (Math.Min(info.Width, info.Height) < minSide)
            return (null, $"below minimum size: {info.Width}x{info.Height}, shorter side < download.min_side {minSide}");
        try
        {
            // The header can be fine while the pixel data is truncated or corrupt: decode once to be sure.
            using var image = Image.Load(bytes);
        }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or NotSupportedException or ImageFormatException)
        {
            return (null, $"undecodable image: {e.Message}");
        }
        string extension = format.FileExtensions.FirstOrDefault() ?? format.Name.ToLowerInvariant();
        return (new ImageFacts(info.Width, info.Height, extension == "jpeg" ? "jpg" : extension), null);
    }
}
