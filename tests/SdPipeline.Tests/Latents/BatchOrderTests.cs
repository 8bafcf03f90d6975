using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Latents;

namespace SdPipeline.Tests.Latents;

public sealed class BatchOrderTests
{
    private static IReadOnlyList<LatentRow> Rows()
    {
        // Items of three aspect ratios, bucketed, with two variants each (random flip).
        var items = Enumerable.Range(0, 30).Select(i => new DatasetItem($"item-{i:D2}", $"x/{i}.png", "c", "00", i % 3 == 0 ? 512 : i % 3 == 1 ? 1024 : 512,
            i % 3 == 0 ? 512 : i % 3 == 1 ? 512 : 1024, "train", $"{i}")).ToList();
        var settings = new LatentsSection { Resolution = 512, Bucketing = true, RandomFlip = true, CenterCrop = true, ShardSize = 7 };
        return LatentPlan.Make(items, settings).SelectMany(shard => shard.Rows.Select((row, index) =>
            new LatentRow(row.Item.Id, row.Item.Caption, row.Item.Sha256, row.Item.Split, row.Bucket.ToString(), [], row.Flip, row.Variant, shard.Name, index))).ToList();
    }

    [Test]
    public void Epoch_Should_HoldOneBucketPerBatch_And_EveryImageOnce()
    {
        var order = new BatchOrder(Rows(), batchSize: 4, seed: 1);

        var batches = order.Epoch(0);

        Assert.That(batches.All(b => b.Select(r => r.Bucket).Distinct().Count() == 1), Is.True);
        Assert.That(batches.SelectMany(b => b).Select(r => r.Id).OrderBy(x => x), Is.EqualTo(Enumerable.Range(0, 30).Select(i => $"item-{i:D2}")));
        Assert.That(batches.Select(b => b[0].Bucket).Distinct().Count(), Is.EqualTo(3));
    }

    [Test]
    public void Epoch_Should_BeAFunctionOfSeedAndEpoch()
    {
        var rows = Rows();
        string Describe(IReadOnlyList<IReadOnlyList<LatentRow>> batches) => string.Join("|", batches.Select(b => string.Join(",", b.Select(r => $"{r.Id}/{r.Variant}"))));

        string first = Describe(new BatchOrder(rows, 4, 1).Epoch(3));
        string again = Describe(new BatchOrder(rows, 4, 1).Epoch(3));
        Assert.That(again, Is.EqualTo(first));
        Assert.That(Describe(new BatchOrder(rows, 4, 1).Epoch(4)), Is.Not.EqualTo(Describe(new BatchOrder(rows, 4, 1).Epoch(3))));
        Assert.That(Describe(new BatchOrder(rows, 4, 2).Epoch(3)), Is.Not.EqualTo(Describe(new BatchOrder(rows, 4, 1).Epoch(3))));
    }

    [Test]
    public void Plan_Should_MakeTwoVariantsWithFlip_And_OneWithout()
    {
        var items = new[] { new DatasetItem("a", "a.png", "c", "00", 64, 64, "train", "a") };

        var flipped = LatentPlan.Make(items, new LatentsSection { Resolution = 64, CenterCrop = true, RandomFlip = true }).SelectMany(s => s.Rows).ToList();
        var plain = LatentPlan.Make(items, new LatentsSection { Resolution = 64, CenterCrop = true, RandomFlip = false, Variants = 4 }).SelectMany(s => s.Rows).ToList();

        Assert.That(flipped.Select(r => r.Flip), Is.EqualTo(new[] { false, true }));
        Assert.That(plain, Has.Count.EqualTo(1), "without random crops or flips every variant would be the same image");
    }
}
