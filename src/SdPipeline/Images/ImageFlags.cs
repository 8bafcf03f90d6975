namespace SdPipeline.Images;

/// <summary>
/// Flags samples that show nothing: an all-black image (the classic fp16 VAE failure, where NaN latents
/// decode to black) or an image of one flat colour. Both mean the sample stage produced no picture, and
/// they would otherwise pass unnoticed in a grid of small thumbnails. The statistics ignore the
/// brightest and darkest 1% of each channel, so a few stray pixels do not hide an empty image.
/// </summary>
public static class ImageFlags
{
    /// <summary>Share of each channel's values ignored at either end (stray pixels).</summary>
    public const double OutlierShare = 0.01;

    /// <summary>No channel above this (outliers aside) is "all black"; noise on black stays under it.</summary>
    public const int BlackMaximum = 12;

    /// <summary>A per-channel value range (outliers aside) at most this is a constant image.</summary>
    public const int ConstantRangeMaximum = 8;

    /// <summary>Why <paramref name="image"/> is flagged, or null when it looks like a picture.</summary>
    public static string? Check(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        int count = image.Width * image.Height;
        if (count == 0) return "empty image (0 pixels)";

        var histograms = new int[3, 256];
        var pixels = image.Pixels;
        for (int i = 0; i < pixels.Length; i += 3)
        {
            histograms[0, pixels[i]]++;
            histograms[1, pixels[i + 1]]++;
            histograms[2, pixels[i + 2]]++;
        }

        int outliers = (int)(count * OutlierShare);
        int brightest = 0, widest = 0;
        Span<double> mean = [0, 0, 0];
        for (int c = 0; c < 3; c++)
        {
            int low = Percentile(histograms, c, outliers);
            int high = Percentile(histograms, c, count - 1 - outliers);
            brightest = Math.Max(brightest, high);
            widest = Math.Max(widest, high - low);
            for (int v = 0; v < 256; v++) mean[c] += v * (double)histograms[c, v];
            mean[c] /= count;
        }

        if (brightest <= BlackMaximum)
            return $"all black (no channel value above {brightest})";
        if (widest <= ConstantRangeMaximum)
            return $"constant colour rgb({Math.Round(mean[0])}, {Math.Round(mean[1])}, {Math.Round(mean[2])}) (channel range {widest})";
        return null;
    }

    /// <summary>Why the PNG/JPEG <paramref name="encoded"/> is flagged (including "not decodable"), or null.</summary>
    public static string? Check(byte[] encoded)
    {
        RgbImage image;
        try
        {
            image = ImageCodec.DecodeRgb(encoded);
        }
        catch (InvalidDataException e)
        {
            return $"not decodable ({e.Message})";
        }
        return Check(image);
    }

    /// <summary>The value at 0-based rank <paramref name="rank"/> of channel <paramref name="channel"/>'s sorted values.</summary>
    private static int Percentile(int[,] histograms, int channel, int rank)
    {
        int seen = 0;
        for (int v = 0; v < 256; v++)
        {
            seen += histograms[channel, v];
            if (seen > rank) return v;
        }
        return 255;
    }
}
