using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Numerics;
using SdPipeline.Tests.Support;
using TorchSharp;

namespace SdPipeline.Tests;

/// <summary>
/// Before any test, the numerics self-check the tool runs before training, over the reference model's UNet and
/// builtin:tiny's VAE: on a CPU whose oneDNN computes a wrong gradient (AMD EPYC Zen 5) it turns oneDNN off for the
/// test process exactly as <c>sdpipe run train</c> would, so the in-process parity and training tests exercise what a
/// user's run computes. On a CPU whose kernels are right it changes nothing. Before it, <c>runtime.kernels=auto</c> as
/// every stage applies it: on AMD's CPUs libtorch's GEMM calls then run on oneDNN's micro-kernel (<see cref="LibtorchGemm"/>)
/// in every test, as in a user's run.
/// </summary>
[SetUpFixture]
public sealed class PlatformNumerics
{
    /// <summary>What the check found for this test process.</summary>
    public static NumericsVerdict? Verdict { get; private set; }

    [OneTimeSetUp]
    public void Check()
    {
        InferenceKernels.Use("auto");
        using var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "unet", "config.json")), torch.META);
        using var vae = new AutoencoderKL(AutoencoderKLConfig.Parse(SdPipeline.BaseModel.BuiltinTiny.VaeConfig, "builtin:tiny vae"), torch.META);
        Verdict = NumericsGuard.Ensure(OperationInventory.Of(unet, vae), torch.CPU, [torch.ScalarType.Float32, torch.ScalarType.BFloat16], "auto",
            line => TestContext.Progress.WriteLine(line));
    }
}
