using SdPipeline.Sampling;
using SdPipeline.Schedulers;

namespace SdPipeline.Tests.Sampling;

public sealed class InfotextTests
{
    [Test]
    public void Format_Should_WriteAutomatic1111sLayout_When_ANegativePromptAndClipSkipAreSet()
    {
        string text = Infotext.Format("a fox, oil painting", "blurry", 30, SchedulerFactory.EulerAncestral, 7.5, 42, 512, 768, clipSkip: 1);

        // modules/infotext_utils.py parse_generation_parameters: prompt lines, "Negative prompt: " line, then the key-value line
        Assert.That(text, Is.EqualTo("a fox, oil painting\nNegative prompt: blurry\nSteps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x768, Clip skip: 2"));
    }

    [Test]
    public void Format_Should_LeaveOutTheNegativeLineAndClipSkip_When_NeitherIsUsed()
    {
        Assert.That(Infotext.Format("a fox", "", 25, SchedulerFactory.DpmSolverPlusPlus, 5, 0, 1024, 1024, clipSkip: 0),
            Is.EqualTo("a fox\nSteps: 25, Sampler: DPM++ 2M, CFG scale: 5, Seed: 0, Size: 1024x1024"));
        Assert.That(Infotext.Format("a fox", null, 25, SchedulerFactory.Pndm, 5, 0, 64, 64, clipSkip: 0), Does.Contain("Sampler: PLMS"));
    }
}
