using SdPipeline.Runtime;
using TorchSharp;

namespace SdPipeline.Tests.Runtime;

public sealed class TorchRuntimeTests
{
    [Test]
    public void TensorOperation_Should_RunInTheTestHost()
    {
        // A real libtorch call: if the native library failed to load, this throws TypeInitializationException.
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var product = a.matmul(a);
        Assert.That(product.data<float>().ToArray(), Is.EqualTo(new float[] { 7, 10, 15, 22 }));
    }

    [Test]
    public void Probe_Should_ReportAWorkingCpuRuntime()
    {
        var facts = TorchRuntime.Probe(TorchRuntime.Initialise("cpu", 0));
        Assert.That(facts.CheckPassed, Is.True);
        Assert.That(facts.Threads, Is.GreaterThan(0));
        Assert.That(facts.LibTorchVersion, Does.StartWith("2."));
    }

    [Test]
    public void Cuda_Should_FailWithAClearMessage_When_Unavailable()
    {
        if (torch.cuda.is_available()) Assert.Ignore("this machine has CUDA");
        var error = Assert.Throws<SdPipeline.Config.ConfigException>(() => TorchRuntime.Initialise("cuda", 0))!;
        Assert.That(error.Message, Does.Contain("CUDA is not available").And.Contain("runtime.device=cpu"));
        Assert.That(error.ExitCode, Is.EqualTo(2), "a configuration error: README's exit codes");
    }
}
