using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>One image's SDXL micro-conditioning, in pixels, (height, width) and (top, left) order.</summary>
/// <param name="OriginalHeight">Height of the image before any resize.</param>
/// <param name="OriginalWidth">Width of the image before any resize.</param>
/// <param name="CropTop">Top of the crop taken after the resize.</param>
/// <param name="CropLeft">Left of the crop taken after the resize.</param>
/// <param name="TargetHeight">Height of the image the model makes (or was trained on).</param>
/// <param name="TargetWidth">Width of the image the model makes.</param>
public sealed record SdxlTimeIds(int OriginalHeight, int OriginalWidth, int CropTop, int CropLeft, int TargetHeight, int TargetWidth)
{
    /// <summary>
    /// The pipeline's defaults for an image of <paramref name="height"/> × <paramref name="width"/>: original = target =
    /// that size, crop (0, 0), as <c>StableDiffusionXLPipeline.__call__</c> sets them.
    /// </summary>
    public static SdxlTimeIds ForGeneration(int height, int width) => new(height, width, 0, 0, height, width);

    /// <summary>The six values in diffusers' order: original (h, w), crop (top, left), target (h, w).</summary>
    public float[] Values => [OriginalHeight, OriginalWidth, CropTop, CropLeft, TargetHeight, TargetWidth];

    /// <summary>The UNet's <c>time_ids</c> [B, 6] float32, one row per image (<c>_get_add_time_ids</c>).</summary>
    public static Tensor Stack(IReadOnlyList<SdxlTimeIds> rows)
    {
        if (rows.Count == 0) throw new ArgumentException("at least one row is needed", nameof(rows));
        return torch.tensor(rows.SelectMany(r => r.Values).ToArray(), [rows.Count, 6], ScalarType.Float32);
    }
}
