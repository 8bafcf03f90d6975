using SdPipeline.Training.Precision;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

public sealed class AutocastTests
{
    [Test]
    public void Enter_Should_SetTheDtypeUntilTheRegionIsLeft_When_RegionsNest()
    {
        Assert.That(Autocast.Current, Is.Null);
        using (Autocast.Enter(ScalarType.Float16))
        {
            Assert.That(Autocast.Current, Is.EqualTo(ScalarType.Float16));
            using (Autocast.Enter(null)) Assert.That(Autocast.Current, Is.Null);
            using (Autocast.Enter(ScalarType.BFloat16)) Assert.That(Autocast.Current, Is.EqualTo(ScalarType.BFloat16));
            Assert.That(Autocast.Current, Is.EqualTo(ScalarType.Float16));
        }
        Assert.That(Autocast.Current, Is.Null);
    }

    [Test]
    public void Current_Should_BeOff_On_AnotherThread()
    {
        // Given a region on this thread
        using var region = Autocast.Enter(ScalarType.BFloat16);
        ScalarType? seen = ScalarType.Float32;

        // When another thread looks
        var thread = new Thread(() => seen = Autocast.Current);
        thread.Start();
        thread.Join();

        // Then it sees no region: the state is per thread, as torch's is
        Assert.That(seen, Is.Null);
        Assert.That(Autocast.Current, Is.EqualTo(ScalarType.BFloat16));
    }

    [Test]
    public void Dispose_Should_Throw_When_AnOuterRegionIsLeftBeforeAnInnerOne()
    {
        var outer = Autocast.Enter(ScalarType.Float16);
        var inner = Autocast.Enter(ScalarType.BFloat16);

        Assert.Throws<InvalidOperationException>(outer.Dispose);

        // The regions still close in the right order, and leaving twice is harmless
        inner.Dispose();
        outer.Dispose();
        outer.Dispose();
        Assert.That(Autocast.Current, Is.Null);
    }

    [TestCase(ScalarType.Float32)]
    [TestCase(ScalarType.Float64)]
    [TestCase(ScalarType.Int64)]
    public void Enter_Should_Refuse_When_TheDtypeIsNotAHalfPrecisionFloat(ScalarType dtype)
    {
        var error = Assert.Throws<ArgumentException>(() => Autocast.Enter(dtype));
        Assert.That(error!.Message, Does.Contain("float16 or bfloat16"));
        Assert.That(Autocast.Current, Is.Null);
    }
}
