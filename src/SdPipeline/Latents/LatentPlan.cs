using System.Security.Cryptography;
using System.Text;
using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Images;

namespace SdPipeline.Latents;

/// <summary>One row to encode: an item, its augmentation, and where it lands.</summary>
/// <param name="Item">The dataset item.</param>
/// <param name="Variant">Augmentation variant number.</param>
/// <param name="Bucket">Target resolution.</param>
/// <param name="Resized">Size the image is resized to before cropping.</param>
/// <param name="Crop">Crop box in the resized image.</param>
/// <param name="Flip">Whether to flip left-right.</param>
public sealed record PlannedRow(DatasetItem Item, int Variant, Bucket Bucket, (int Width, int Height) Resized, CropBox Crop, bool Flip)
{
    /// <summary>
    /// The crop's (top, left) as <c>train_text_to_image_sdxl.py</c> records it for the time ids: that script flips the
    /// resized image before cropping, so a flipped row's left edge is counted in the flipped image. <see cref="Crop"/> is in
    /// the unflipped image; the pixels are the same either way (crop-then-flip of the mirrored box).
    /// </summary>
    public (int Top, int Left) SdxlCropTopLeft => (Crop.Top, Flip ? Resized.Width - Crop.Left - Crop.Width : Crop.Left);
}

/// <summary>A shard to write: rows of one bucket.</summary>
/// <param name="Name">File name.</param>
/// <param name="Bucket">Its resolution.</param>
/// <param name="Rows">Its rows, in order.</param>
public sealed record PlannedShard(string Name, Bucket Bucket, IReadOnlyList<PlannedRow> Rows);

/// <summary>
/// Decides, before any pixel is decoded, every row of the cache: each item's bucket, its augmentation
/// variants (random crops and flips drawn from a seed, so a rerun plans the same rows), and their split
/// into shards. A deterministic plan is what lets an interrupted run trust the shards already written.
/// </summary>
public static class LatentPlan
{
    /// <summary>The shards for <paramref name="items"/> under <paramref name="settings"/>.</summary>
    /// <param name="items">The dataset.</param>
    /// <param name="settings">The latents section.</param>
    /// <param name="flipBeforeCrop">
    /// SDXL's order (<c>train_text_to_image_sdxl.py</c>: resize, flip, then crop) instead of SD's (<c>train_text_to_image.py</c>:
    /// resize, crop, then flip). It matters only for a centre crop of a flipped image whose margin is odd, where rounding
    /// half to even puts the box one pixel to the other side.
    /// </param>
    public static IReadOnlyList<PlannedShard> Make(IReadOnlyList<DatasetItem> items, LatentsSection settings, bool flipBeforeCrop = false)
    {
        int resolution = settings.Resolution;
        var buckets = settings.Bucketing
            ? AspectBuckets.Make(resolution, settings.BucketMinSide > 0 ? settings.BucketMinSide : resolution / 2,
                settings.BucketMaxSide > 0 ? settings.BucketMaxSide : resolution * 2)
            : [new Bucket(resolution, resolution)];

        var rows = new List<PlannedRow>();
        foreach (var item in items)
        {
            var bucket = AspectBuckets.Nearest(buckets, item.Width, item.Height);
            var resized = ImagePreprocessor.CoverSize(item.Width, item.Height, bucket.Width, bucket.Height);
            bool canMove = !settings.CenterCrop && (resized.Width > bucket.Width || resized.Height > bucket.Height);
            int variants = !canMove && !settings.RandomFlip ? 1
                : !canMove ? 2
                : Math.Max(settings.Variants, settings.RandomFlip ? 2 : 1);
            for (int variant = 0; variant < variants; variant++)
            {
                bool flip = settings.RandomFlip && variant % 2 == 1;
                var crop = canMove
                    ? ImagePreprocessor.RandomCrop(resized.Width, resized.Height, bucket.Width, bucket.Height, new Random(Seed(settings.Seed, item.Id, variant)))
                    : ImagePreprocessor.CenterCrop(resized.Width, resized.Height, bucket.Width, bucket.Height);
                // The centre box of the flipped image, as a box of the unflipped one (a random box's distribution is symmetric).
                if (flip && flipBeforeCrop && !canMove)
                    crop = crop with { Left = resized.Width - crop.Left - crop.Width };
                rows.Add(new PlannedRow(item, variant, bucket, resized, crop, flip));
            }
        }

        var shards = new List<PlannedShard>();
        foreach (var group in rows.GroupBy(r => r.Bucket).OrderBy(g => g.Key.ToString(), StringComparer.Ordinal))
        {
            var bucketRows = group.ToList();
            for (int start = 0, number = 0; start < bucketRows.Count; start += settings.ShardSize, number++)
                shards.Add(new PlannedShard($"shard-{group.Key}-{number:D5}.safetensors", group.Key,
                    bucketRows.GetRange(start, Math.Min(settings.ShardSize, bucketRows.Count - start))));
        }
        return shards;
    }

    /// <summary>A seed for one item's variant that does not depend on the item's position in the dataset.</summary>
    private static int Seed(int seed, string id, int variant) =>
        BitConverter.ToInt32(SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}/{id}/{variant}")), 0);
}
