using SdPipeline.Schedulers;

namespace SdPipeline.Tests.Schedulers;

public sealed class SleefExpTests
{
    [Test]
    public void Exp_Should_StayWithinOneUlp_When_ArgumentsSpanTheFloatRange()
    {
        for (float x = -100f; x <= 80f; x += 0.0137f)
        {
            double exact = Math.Exp(x);
            float actual = SleefExp.Exp(x);
            double ulp = MathF.BitIncrement((float)exact) - (float)exact;
            Assert.That(Math.Abs(actual - exact), Is.LessThanOrEqualTo(ulp), $"exp({x})");
        }
    }

    [Test]
    public void Exp_Should_HandleTheEdges_When_ArgumentIsInfiniteOrNaN()
    {
        Assert.That(SleefExp.Exp(float.NegativeInfinity), Is.EqualTo(0f), "the last DPM-Solver step has h = ∞");
        Assert.That(SleefExp.Exp(float.PositiveInfinity), Is.EqualTo(float.PositiveInfinity));
        Assert.That(float.IsNaN(SleefExp.Exp(float.NaN)), Is.True);
        Assert.That(SleefExp.Exp(0f), Is.EqualTo(1f));
    }
}
