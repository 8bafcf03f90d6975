using SdPipeline.Progress;

namespace SdPipeline.Tests.Progress;

/// <summary>The plain progress lines of a log: counts as counts, bytes as bytes, and a training step's status.</summary>
public sealed class PlainProgressTests
{
    [Test]
    public void StepCounter_Should_ShowStepsAsCountsWithTheStatus_When_LossAndLrAreSet()
    {
        var output = new StringWriter();
        var sink = new PlainProgress(output, TimeSpan.Zero);
        using (var bar = sink.Start("train steps", 100))
        {
            bar.SetStatus("loss 0.1234, lr 1.0e-04");
            bar.SetValue(20);
        }
        string last = output.ToString().Trim().Split('\n')[^1];
        Assert.That(last, Does.StartWith("train steps: 20 / 100 (20%)"));
        Assert.That(last, Does.Contain("loss 0.1234, lr 1.0e-04"));
        Assert.That(last, Does.Not.Contain("B/s").And.Not.Contain(" KB"));
    }
}
