namespace SdPipeline.Images;

/// <summary>
/// The image transform of diffusers' <c>train_text_to_image.py</c>: convert to RGB (alpha dropped, grey
/// repeated, as PIL's <c>convert("RGB")</c>), resize so the image covers the target (the short side to the
/// resolution, the long side truncated as torchvision does) with PIL's arithmetic, crop (centre, with
/// Python's round-half-to-even, or random), optionally flip, and scale to [-1, 1] in CHW order.
/// Decoding is SkiaSharp's (libjpeg-turbo, as PIL) and resampling <see cref="PilResampler"/>: both
/// reproduce PIL, so the model sees the pixels diffusers would give it.
/// </summary>
public static class ImagePreprocessor
{
    /// <summary>
    /// The size after resizing <paramref name="width"/>×<paramref name="height"/> to cover a
    /// <paramref name="targetWidth"/>×<paramref name="targetHeight"/> box. For a square target this is
    /// torchvision's <c>Resize(res)</c>: the short side becomes res, the long side <c>int(res·long/short)</c>.
    /// </summary>
    public static (int Width, int Height) CoverSize(int width, int height, int targetWidth, int targetHeight)
    {
        // Scale by whichever side must grow more, then truncate the other side like torchvision does.
        if ((long)targetWidth * height >= (long)targetHeight * width)
            return (targetWidth, Math.Max(targetHeight, (int)((long)targetWidth * height / width)));
        return (Math.Max(targetWidth, (int)((long)targetHeight * width / height)), targetHeight);
    }

    /// <summary>torchvision's <c>CenterCrop</c> box: <c>top = int(round((h - ch) / 2))</c> with round-half-to-even.</summary>
    public static CropBox CenterCrop(int width, int height, int cropWidth, int cropHeight) =>
        new((int)Math.Round((width - cropWidth) / 2.0, MidpointRounding.ToEven),
            (int)Math.Round((height - cropHeight) / 2.0, MidpointRounding.ToEven), cropWidth, cropHeight);

    /// <summary>A random crop box (uniform over valid offsets, as torchvision's <c>RandomCrop</c>).</summary>
    public static CropBox RandomCrop(int width, int height, int cropWidth, int cropHeight, Random random) =>
        new(random.Next(width - cropWidth + 1), random.Next(height - cropHeight + 1), cropWidth, cropHeight);

    /// <summary>PIL's filter for an interpolation mode.</summary>
    public static PilResampler.Filter Filter(Interpolation interpolation) => interpolation switch
    {
        Interpolation.Lanczos => PilResampler.Lanczos,
        Interpolation.Bilinear => PilResampler.Bilinear,
        Interpolation.Bicubic => PilResampler.Bicubic,
        _ => throw new ArgumentOutOfRangeException(nameof(interpolation), interpolation, null),
    };

    /// <summary>The crop (and flip) of <paramref name="image"/> as CHW float32 in [-1, 1].</summary>
    public static float[] ToTensorData(RgbImage image, CropBox crop, bool flip)
    {
        int width = crop.Width, height = crop.Height, plane = width * height;
        var data = new float[3 * plane];
        byte[] pixels = image.Pixels;
        for (int y = 0; y < height; y++)
        {
            int row = (crop.Top + y) * image.Width;
            for (int x = 0; x < width; x++)
            {
                int p = (row + crop.Left + (flip ? width - 1 - x : x)) * 3, i = y * width + x;
                // ToTensor (÷255) then Normalize(0.5, 0.5): v/127.5 − 1.
                data[i] = pixels[p] / 127.5f - 1f;
                data[plane + i] = pixels[p + 1] / 127.5f - 1f;
                data[2 * plane + i] = pixels[p + 2] / 127.5f - 1f;
            }
        }
        return data;
    }

    /// <summary>The whole transform for a <paramref name="targetWidth"/>×<paramref name="targetHeight"/> output.</summary>
    public static (float[] Data, CropBox Crop) Transform(byte[] encoded, int targetWidth, int targetHeight, Interpolation interpolation,
        bool centerCrop, bool flip, Random? random = null)
    {
        var image = ImageCodec.DecodeRgb(encoded);
        var (width, height) = CoverSize(image.Width, image.Height, targetWidth, targetHeight);
        var resized = PilResampler.Resize(image, width, height, Filter(interpolation));
        var crop = centerCrop
            ? CenterCrop(width, height, targetWidth, targetHeight)
            : RandomCrop(width, height, targetWidth, targetHeight, random ?? throw new ArgumentNullException(nameof(random), "a random crop needs a Random"));
        return (ToTensorData(resized, crop, flip), crop);
    }
}
