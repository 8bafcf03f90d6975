using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using SkiaSharp;

namespace SdPipeline.Images;

/// <summary>
/// Image decoding and PNG encoding through SkiaSharp, whose JPEG decoder is libjpeg-turbo with the same
/// defaults PIL uses (ISLOW DCT, fancy chroma upsampling): it decodes the fixtures' JPEG bit-identically
/// to PIL, where ImageSharp 2.1's decoder differed by 1.2 grey levels on average and up to 70 at colour
/// edges (measured on preprocess/photo_320x240_q90.jpg). Training data must look to the model as it
/// does in diffusers, so the decoder matters.
/// </summary>
public static class ImageCodec
{
    /// <summary>
    /// Reads the header only: format and size as displayed, that is after the EXIF orientation (a phone's portrait photo,
    /// stored landscape with Orientation 6, is reported portrait). Throws <see cref="InvalidDataException"/> when it is not an image.
    /// </summary>
    public static ImageInfo Identify(byte[] encoded)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw Undecodable(encoded);
        return SwapsAxes(codec.EncodedOrigin)
            ? new ImageInfo(codec.Info.Height, codec.Info.Width, Extension(codec.EncodedFormat))
            : new ImageInfo(codec.Info.Width, codec.Info.Height, Extension(codec.EncodedFormat));
    }

    /// <summary>
    /// Decodes to 8-bit RGB as PIL's <c>convert("RGB")</c> does: alpha dropped without compositing
    /// (colour values unpremultiplied), grey repeated; then turned upright by the EXIF orientation (JPEG and WebP), as
    /// Hugging Face <c>datasets</c>' <c>Image.decode_example</c> does (<c>PIL.ImageOps.exif_transpose</c>, since
    /// datasets 2.19) for the images diffusers' training scripts read.
    /// Throws <see cref="InvalidDataException"/> on corrupt or truncated data.
    /// </summary>
    public static RgbImage DecodeRgb(byte[] encoded)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw Undecodable(encoded);
        // SKImageInfo.BytesSize is an int: past 2^29 pixels it wraps, and the decoder would write past the buffer.
        long rgbaBytes = 4L * codec.Info.Width * codec.Info.Height;
        if (codec.Info.Width <= 0 || codec.Info.Height <= 0 || rgbaBytes > Array.MaxLength)
            throw new InvalidDataException($"image of {codec.Info.Width}x{codec.Info.Height} pixels is too large to decode ({rgbaBytes} bytes; at most {Array.MaxLength})");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[rgbaBytes];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        try
        {
            var result = codec.GetPixels(info, handle.AddrOfPinnedObject());
            if (result != SKCodecResult.Success)
                throw new InvalidDataException($"image data is corrupt or truncated ({result})");
        }
        finally
        {
            handle.Free();
        }
        var rgb = new byte[info.Width * info.Height * 3];
        for (int i = 0, j = 0; i < rgba.Length; i += 4, j += 3)
        {
            rgb[j] = rgba[i];
            rgb[j + 1] = rgba[i + 1];
            rgb[j + 2] = rgba[i + 2];
        }
        return Orient(new RgbImage(info.Width, info.Height, rgb), codec.EncodedOrigin);
    }

    // Skia has no TIFF decoder: say so, and how to convert, rather than call a valid TIFF corrupt.
    private static InvalidDataException Undecodable(byte[] encoded) =>
        encoded.AsSpan().StartsWith("II*\0"u8) || encoded.AsSpan().StartsWith("MM\0*"u8)
            ? new InvalidDataException("a TIFF image, which this tool cannot decode; convert it to PNG (for example `mogrify -format png *.tif`, ImageMagick)")
            : new InvalidDataException("not a decodable image (unknown format or corrupt header)");

    /// <summary>Whether an orientation stores the image with its rows and columns swapped (EXIF 5 to 8).</summary>
    private static bool SwapsAxes(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>The stored image turned upright, as PIL's <c>exif_transpose</c> (EXIF orientation 2 to 8).</summary>
    private static RgbImage Orient(RgbImage stored, SKEncodedOrigin origin)
    {
        if (origin == SKEncodedOrigin.TopLeft) return stored;
        int w = stored.Width, h = stored.Height;
        bool swap = SwapsAxes(origin);
        int outWidth = swap ? h : w, outHeight = swap ? w : h;
        var result = new byte[stored.Pixels.Length];
        for (int y = 0; y < outHeight; y++)
        {
            for (int x = 0; x < outWidth; x++)
            {
                // The stored pixel shown at (x, y).
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (w - 1 - x, y),           // 2: mirrored left-right
                    SKEncodedOrigin.BottomRight => (w - 1 - x, h - 1 - y), // 3: rotated 180°
                    SKEncodedOrigin.BottomLeft => (x, h - 1 - y),         // 4: mirrored top-bottom
                    SKEncodedOrigin.LeftTop => (y, x),                    // 5: transposed
                    SKEncodedOrigin.RightTop => (y, h - 1 - x),           // 6: shown rotated 90° clockwise
                    SKEncodedOrigin.RightBottom => (w - 1 - y, h - 1 - x), // 7: transversed
                    SKEncodedOrigin.LeftBottom => (w - 1 - y, x),         // 8: shown rotated 90° counter-clockwise
                    _ => (x, y),
                };
                int s = (sy * w + sx) * 3, d = (y * outWidth + x) * 3;
                result[d] = stored.Pixels[s];
                result[d + 1] = stored.Pixels[s + 1];
                result[d + 2] = stored.Pixels[s + 2];
            }
        }
        return new RgbImage(outWidth, outHeight, result);
    }

    /// <summary>Encodes an opaque PNG, with optional <c>tEXt</c> chunks (keyword → Latin-1 text) before the image data.</summary>
    public static byte[] EncodePng(RgbImage image, IReadOnlyDictionary<string, string>? text = null)
    {
        var info = new SKImageInfo(image.Width, image.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        var rgba = new byte[info.BytesSize];
        for (int i = 0, j = 0; j < image.Pixels.Length; i += 4, j += 3)
        {
            rgba[i] = image.Pixels[j];
            rgba[i + 1] = image.Pixels[j + 1];
            rgba[i + 2] = image.Pixels[j + 2];
            rgba[i + 3] = 255;
        }
        using var bitmap = new SKBitmap();
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        byte[] png;
        try
        {
            bitmap.InstallPixels(info, handle.AddrOfPinnedObject(), info.RowBytes);
            using var encoded = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            png = encoded.ToArray();
        }
        finally
        {
            handle.Free();
        }
        return text is { Count: > 0 } ? PngText.Insert(png, text) : png;
    }

    private static string Extension(SKEncodedImageFormat format) => format switch
    {
        SKEncodedImageFormat.Jpeg => "jpg",
        SKEncodedImageFormat.Png => "png",
        SKEncodedImageFormat.Webp => "webp",
        SKEncodedImageFormat.Gif => "gif",
        SKEncodedImageFormat.Bmp => "bmp",
        SKEncodedImageFormat.Ico => "ico",
        SKEncodedImageFormat.Wbmp => "wbmp",
        SKEncodedImageFormat.Heif => "heif",
        SKEncodedImageFormat.Avif => "avif",
        _ => format.ToString().ToLowerInvariant(),
    };
}
