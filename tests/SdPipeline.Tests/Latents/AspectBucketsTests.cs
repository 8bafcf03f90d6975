using SdPipeline.Latents;

namespace SdPipeline.Tests.Latents;

public sealed class AspectBucketsTests
{
    [Test]
    public void Make_Should_KeepEveryBucketNearTheTargetArea_InStepsOf64()
    {
        var buckets = AspectBuckets.Make(512, 256, 1024);

        Assert.That(buckets[0], Is.EqualTo(new Bucket(512, 512)));
        Assert.That(buckets.All(b => b.Width % 64 == 0 && b.Height % 64 == 0), Is.True);
        Assert.That(buckets.All(b => (long)b.Width * b.Height <= 512 * 512), Is.True);
        Assert.That(buckets.All(b => (long)b.Width * b.Height > 512 * 512 * 0.75), Is.True);
        Assert.That(buckets, Does.Contain(new Bucket(768, 320)).And.Contain(new Bucket(320, 768)), "both orientations");
    }

    [TestCase(1024, 512, 704, 320)]   // 2:1 landscape → the widest bucket near 2:1 (704x320, 2.2)
    [TestCase(512, 1024, 320, 704)]   // the portrait mirror
    [TestCase(640, 480, 576, 448)]    // 4:3 → 576x448 (1.29)
    [TestCase(500, 500, 512, 512)]    // square
    public void Nearest_Should_AssignKnownAspectRatios(int width, int height, int bucketWidth, int bucketHeight)
    {
        var buckets = AspectBuckets.Make(512, 256, 1024);

        Assert.That(AspectBuckets.Nearest(buckets, width, height), Is.EqualTo(new Bucket(bucketWidth, bucketHeight)));
    }
}
