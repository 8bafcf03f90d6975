using SdPipeline.Images;

namespace SdPipeline.Data;

/// <summary>Checks that bytes are a decodable image of acceptable size, reading the header before decoding pixels.</summary>
public static class ImageInspector
{
    /// <summary>
    /// Returns the image's facts, or a reason to skip it: undecodable, too many pixels (checked from the header,
    /// before any pixel buffer is allocated), or a shorter side below <paramref name="minSide"/>.
    /// </summary>
    public static (ImageInfo? Info, string? Problem) Inspect(byte[] bytes, int minSide, long maxPixels)
    {
        ImageInfo info;
        try
        {
            info = ImageCodec.Identify(bytes);
        }
        catch (InvalidDataException e)
        {
            return (null, $"undecodable image: {e.Message}");
        }
        long pixels = (long)info.Width * info.Height;
        if (pixels > maxPixels)
            return (null, $"too many pixels: {info.Width}x{info.Height} > download.max_pixels {maxPixels}");
        if (Math.Min(info.Width, info.Height) < minSide)
            return (null, $"below minimum size: {info.Width}x{info.Height}, shorter side < download.min_side {minSide}");
        try
        {
            // The header can be fine while the pixel data is truncated or corrupt: decode once to be sure.
            ImageCodec.DecodeRgb(bytes);
        }
        catch (InvalidDataException e)
        {
            return (null, $"undecodable image: {e.Message}");
        }
        return (info, null);
    }
}
