namespace SdPipeline.Latents;

/// <summary>
/// The order training visits the cache in, as a pure function of (seed, epoch): each epoch picks one cached
/// augmentation variant per image, shuffles the images within each bucket, cuts them into batches of one
/// bucket, and shuffles the batches. Being a function, not a stateful iterator, is what makes an exact
/// resume possible: a checkpoint stores (epoch, batch index) and the rest follows.
/// </summary>
public sealed class BatchOrder(IReadOnlyList<LatentRow> rows, int batchSize, int seed)
{
    private readonly IReadOnlyList<IGrouping<string, LatentRow>> _items =
        rows.GroupBy(r => r.Id).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();

    /// <summary>Distinct images.</summary>
    public int ItemCount => _items.Count;

    /// <summary>The batches of <paramref name="epoch"/>, each from one bucket; a bucket's last batch may be smaller.</summary>
    public IReadOnlyList<IReadOnlyList<LatentRow>> Epoch(int epoch)
    {
        // Not HashCode.Combine: it is salted per process, and this order must be the same in every run.
        var random = new Random(unchecked(seed * 1_000_003 + epoch * 7_919 + 0x5EED));
        var chosen = _items.Select(item =>
        {
            var variants = item.OrderBy(r => r.Variant).ToList();
            return variants[random.Next(variants.Count)];
        }).ToList();

        var batches = new List<IReadOnlyList<LatentRow>>();
        foreach (var bucket in chosen.GroupBy(r => r.Bucket).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var shuffled = bucket.ToList();
            Shuffle(shuffled, random);
            for (int start = 0; start < shuffled.Count; start += batchSize)
                batches.Add(shuffled.GetRange(start, Math.Min(batchSize, shuffled.Count - start)));
        }
        Shuffle(batches, random);
        return batches;
    }

    private static void Shuffle<T>(List<T> list, Random random)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
    }
}
