using SdPipeline.Runtime;

namespace SdPipeline.Tests.Runtime;

/// <summary>
/// What <c>--device cuda</c> says when CUDA is unavailable: the first missing piece with its fix, and always the
/// driver and the device it looked for, so a runner's log says what to repair.
/// </summary>
public sealed class CudaDiagnosisTests
{
    private static readonly CudaDiagnosis Healthy = new(
        CudaBuild: true, NativeDirectory: "/opt/sdpipe/runtimes/linux-x64/native", DriverVersion: "570.86.15", DriverLibraryLoads: true,
        DeviceNodes: ["/dev/nvidia0", "/dev/nvidia1"], CudaVisibleDevices: null, NvidiaVisibleDevices: null);

    [Test]
    public void ExplainCuda_Should_NameTheBackend_When_TheBuildIsCpuOnly()
    {
        string message = TorchRuntime.ExplainCuda(Healthy with { CudaBuild = false });

        Assert.That(message, Does.StartWith("this build carries the CPU libtorch").And.Contain("--torch-backend=cuda"));
        Assert.That(message, Does.Contain("libtorch_cuda.so in /opt/sdpipe/runtimes/linux-x64/native (absent)"));
        Assert.That(message, Does.Contain("NVIDIA driver 570.86.15").And.Contain("device cuda:0 (/dev/nvidia0, /dev/nvidia1"));
    }

    [Test]
    public void ExplainCuda_Should_SayWhereTheDriverWasLookedFor_When_ItIsMissing()
    {
        string message = TorchRuntime.ExplainCuda(Healthy with { DriverVersion = null, DriverLibraryLoads = false, DeviceNodes = [] });

        Assert.That(message, Does.StartWith("the NVIDIA driver is not installed"));
        Assert.That(message, Does.Contain("libcuda.so.1 does not load").And.Contain("/proc/driver/nvidia/version is absent"));
        Assert.That(message, Does.Contain("no /dev/nvidiaN device node"));
    }

    [Test]
    public void ExplainCuda_Should_PointAtTheContainer_When_TheDriverIsThereButNoDeviceNode()
    {
        string message = TorchRuntime.ExplainCuda(Healthy with { DeviceNodes = [] });

        Assert.That(message, Does.Contain("no GPU device node (/dev/nvidia0)").And.Contain("--gpus all"));
    }

    [TestCase("", "hides every GPU")]
    [TestCase("-1", "hides every GPU")]
    [TestCase("5", "names no existing GPU (this machine has 2: 0 to 1)")]
    public void ExplainCuda_Should_BlameCudaVisibleDevices_When_ItHidesTheGpus(string visible, string expected)
    {
        string message = TorchRuntime.ExplainCuda(Healthy with { CudaVisibleDevices = visible });

        Assert.That(message, Does.StartWith("CUDA_VISIBLE_DEVICES").And.Contain(expected));
    }

    [Test]
    public void ExplainCuda_Should_NameTheDriverAndTheCudaVersion_When_EverythingIsPresentButUnusable()
    {
        string message = TorchRuntime.ExplainCuda(Healthy with { CudaVisibleDevices = "1" });

        Assert.That(message, Does.Contain($"CUDA {TorchRuntime.CudaRuntimeVersion}").And.Contain("570 or newer"));
        Assert.That(message, Does.Contain("NVIDIA driver 570.86.15 (/proc/driver/nvidia/version)").And.Contain("CUDA_VISIBLE_DEVICES '1'"));
    }

    [Test]
    public void Initialise_Should_FailAtOnce_NamingTheDriverAndDevice_When_CudaIsUnavailableHere()
    {
        if (TorchSharp.torch.cuda.is_available()) Assert.Ignore("this machine has CUDA");

        var error = Assert.Throws<SdPipeline.Config.ConfigException>(() => TorchRuntime.Initialise("cuda", 0))!;

        Assert.That(error.Message, Does.Contain("Looked for: libtorch_cuda.so in ").And.Contain("NVIDIA driver").And.Contain("device cuda:0 ("));
    }
}
