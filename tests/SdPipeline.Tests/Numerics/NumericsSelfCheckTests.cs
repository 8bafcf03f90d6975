using Newtonsoft.Json.Linq;
using SdPipeline.Lora;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Numerics;
using SdPipeline.Runtime;
using SdPipeline.Tests.Support;
using TorchSharp;

namespace SdPipeline.Tests.Numerics;

/// <summary>
/// The self-check finds a wrong kernel, names it with its error, and the guard routes around it — proven with a fault
/// injected where the real one sits (the input gradient of a convolution with fewer than 16 output channels, only
/// while oneDNN is on), since a CPU whose kernels are right has nothing to find.
/// </summary>
[NonParallelizable] // switches oneDNN and the injected fault for the whole process
public sealed class NumericsSelfCheckTests
{
    private bool _oneDnnBefore;

    [SetUp]
    public void Remember() => _oneDnnBefore = OneDnn.Enabled;

    [TearDown]
    public void Restore()
    {
        FaultInjection.Active = false;
        OneDnn.TrySetEnabled(_oneDnnBefore);
    }

    private static UNet2DConditionModel TinyUnet() =>
        new(UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "unet", "config.json")), torch.META);

    private static IReadOnlyList<OperationProbe> TinyUnetProbes()
    {
        using var unet = TinyUnet();
        return OperationInventory.Of(unet);
    }

    [Test]
    public void Inventory_Should_HoldEachDistinctLayerConfigurationOnce_IncludingConvOut()
    {
        var probes = TinyUnetProbes();

        Assert.That(probes, Is.Unique);
        // conv_out of every Stable Diffusion: block_out_channels[0] → 4 latent channels, 3×3.
        Assert.That(probes.OfType<Conv2dProbe>().Select(p => p.Name), Has.Member("conv2d 32→4 k3 s1 p1"));
        Assert.That(probes.OfType<Conv2dProbe>().Select(p => p.Name), Has.Member("conv2d 4→32 k3 s1 p1"), "conv_in");
        Assert.That(probes.OfType<Conv2dProbe>().Any(p => p.Stride == 2), Is.True, "the downsampler");
        Assert.That(probes.OfType<LinearProbe>(), Is.Not.Empty);
        Assert.That(probes.OfType<GroupNormProbe>(), Is.Not.Empty);
        Assert.That(probes.OfType<LayerNormProbe>(), Is.Not.Empty);
        Assert.That(probes.OfType<AttentionProbe>(), Is.Not.Empty);
    }

    [Test]
    public void Inventory_Should_IncludeTheLoraDownProjection_When_AdaptersSitOnConvolutions()
    {
        // A LoRA down-projection on a 3×3 convolution has `rank` output channels: the class the broken kernel gets wrong.
        var unet = UNet2DConditionModel.FromFolder(SdPipeline.Weights.DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        using var network = LoraNetwork.Create(unet, null, new LoraSettings(4, 4, 0, Attention: true, Resnets: true, TextEncoder: false), seed: 0);
        var probes = OperationInventory.Of(unet);
        unet.Dispose();

        Assert.That(probes.OfType<Conv2dProbe>().Where(p => p.OutChannels == 4 && p.Kernel == 3).Select(p => p.InChannels), Does.Contain(64L),
            "lora_down of a 64-channel resnet conv");
        Assert.That(probes.OfType<LinearProbe>().Any(p => p.OutFeatures == 4), Is.True, "lora_A of an attention projection");
    }

    [Test]
    public void Check_Should_PassEveryProbe_When_TheKernelsAreRight()
    {
        // Given this machine's kernels as the test process runs them (oneDNN off here if the set-up check found it wrong)
        var report = NumericsSelfCheck.Run(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32]);

        var worst = report.Results.MaxBy(r => r.RelativeError)!;
        TestContext.Out.WriteLine($"{report.Results.Count} probes in {report.Seconds:0.000} s on {CpuModel.Name}; worst {worst}");
        Assert.That(report.Failures, Is.Empty);
        Assert.That(worst.RelativeError, Is.LessThan(1e-5), "float32 against float64 on inputs this small");
    }

    [Test]
    public void Check_Should_NameTheConvolutionAndItsError_When_AWrongKernelIsInjected()
    {
        OneDnn.TrySetEnabled(true);
        FaultInjection.Active = true;

        var report = NumericsSelfCheck.Run(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32]);

        Assert.That(report.Passed, Is.False);
        Assert.That(report.Failures.Select(f => f.Probe), Is.All.InstanceOf<Conv2dProbe>().And.All.Matches<Conv2dProbe>(p => p.OutChannels < 16));
        var convOut = report.Failures.Single(f => f.Probe.Name == "conv2d 32→4 k3 s1 p1");
        Assert.That(convOut.WorstTensor, Is.EqualTo("grad input"));
        Assert.That(convOut.RelativeError, Is.GreaterThan(1e-2));
        Assert.That(convOut.ToString(), Does.StartWith("conv2d 32→4 k3 s1 p1 (float32): grad input off by "));
        Assert.That(report.Results.Count(r => !r.Passed), Is.EqualTo(report.Failures.Count));
    }

    [Test]
    public void Guard_Should_TurnOneDnnOffAndSaySo_When_AWrongKernelIsInjected()
    {
        if (!OneDnn.Available) Assert.Fail("libtorch_cpu exports no oneDNN switch: the workaround cannot engage");
        OneDnn.TrySetEnabled(true);
        FaultInjection.Active = true;
        var log = new List<string>();

        var verdict = NumericsGuard.Ensure(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32], "auto", log.Add);

        Assert.That(OneDnn.Enabled, Is.False, "the workaround turned oneDNN off for the process");
        Assert.That(verdict.Workaround, Is.EqualTo("oneDNN off"));
        Assert.That(verdict.Failures, Has.Some.StartsWith("conv2d 32→4 k3 s1 p1 (float32): grad input off by"));
        Assert.That(log.Last(), Is.EqualTo(verdict.Line));
        Assert.That(verdict.Line, Does.StartWith("numerics: oneDNN off — ").And.Contains("conv2d 32→4"));
        Assert.That(NumericsVerdict.FromJson(JObject.Parse(verdict.ToJson().ToString())), Is.EqualTo(verdict).Using<NumericsVerdict>(
            (a, b) => a.Line == b.Line && a.Failures.SequenceEqual(b.Failures)));
    }

    [Test]
    public void Guard_Should_KeepOneDnn_When_TheKernelsAreRight()
    {
        OneDnn.TrySetEnabled(true);
        var log = new List<string>();

        var verdict = NumericsGuard.Ensure(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32], "auto", log.Add);

        TestContext.Out.WriteLine($"{CpuModel.Name}: {verdict.Line}");
        if (PlatformNumerics.Verdict?.Workaround is null)
        {
            // A CPU whose kernels are right (the set-up check found nothing): the fast path is never switched off.
            Assert.That(verdict.Workaround, Is.Null);
            Assert.That(OneDnn.Enabled, Is.True);
            Assert.That(log, Has.Exactly(1).Matches<string>(l => l.StartsWith("numerics: ") && l.Contains("right against float64")));
        }
        else
        {
            // A CPU whose oneDNN is wrong for real (AMD EPYC Zen 5): the guard finds it again and routes around it.
            Assert.That(verdict.Workaround, Is.EqualTo("oneDNN off"));
            Assert.That(OneDnn.Enabled, Is.False);
        }
    }

    [Test]
    public void Guard_Should_TurnOneDnnOffAndCheckThatPath_When_AutoAndTheWorkPrefersLibtorchsConvolutions()
    {
        // Given oneDNN on, kernels that are right, and work whose faster path is libtorch's own convolutions
        if (!OneDnn.Available) Assert.Fail("libtorch_cpu exports no oneDNN switch");
        OneDnn.TrySetEnabled(true);
        var log = new List<string>();

        // When the guard runs under runtime.onednn=auto, and under on
        var verdict = NumericsGuard.Ensure(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32], "auto", log.Add, "faster here");
        bool offUnderAuto = OneDnn.Enabled;
        OneDnn.TrySetEnabled(true);
        NumericsGuard.Ensure(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32], "on", _ => { }, "faster here");

        // Then auto turned oneDNN off and says why, with nothing wrong; on keeps it
        Assert.That(offUnderAuto, Is.False, "auto takes the faster path");
        Assert.That(verdict.Workaround, Is.EqualTo("oneDNN off (faster here)"));
        Assert.That(verdict.Failures, Is.Empty);
        Assert.That(log.Last(), Does.StartWith("numerics: ").And.Contain("right against float64 with oneDNN off (faster here)"));
        Assert.That(OneDnn.Enabled, Is.True, "runtime.onednn=on keeps oneDNN whatever the work prefers");
    }

    [Test]
    public void Guard_Should_StopNamingTheSetting_When_OneDnnIsForcedOnAndAKernelIsWrong()
    {
        OneDnn.TrySetEnabled(true);
        FaultInjection.Active = true;

        var error = Assert.Throws<NumericsException>(() =>
            NumericsGuard.Ensure(TinyUnetProbes(), torch.CPU, [torch.ScalarType.Float32], "on", _ => { }));

        Assert.That(error!.Message, Does.Contain("conv2d 32→4 k3 s1 p1").And.Contain("runtime.onednn=on").And.Contain("runtime.onednn=auto"));
        Assert.That(OneDnn.Enabled, Is.True);
    }

    [Test]
    public void OneDnnSwitch_Should_ChangeWhatLibtorchReports()
    {
        Assert.That(OneDnn.Available, Is.True, "libtorch 2.10's libtorch_cpu exports at::Context::setUserEnabledMkldnn");
        OneDnn.TrySetEnabled(false);
        Assert.That(OneDnn.Enabled, Is.False);
        OneDnn.TrySetEnabled(true);
        Assert.That(OneDnn.Enabled, Is.True);
    }

    [Test]
    public void LibTorchLog_Should_BeSetToErrorsOnly_And_BackToWarnings()
    {
        int? before = LibTorchLog.Level;
        try
        {
            LibTorchLog.Apply(showWarnings: false);
            Assert.That(LibTorchLog.Level, Is.EqualTo(LibTorchLog.Error), "c10's FLAGS_caffe2_log_level");
            LibTorchLog.Apply(showWarnings: true);
            Assert.That(LibTorchLog.Level, Is.EqualTo(LibTorchLog.Warning));
        }
        finally
        {
            if (before is { } level) LibTorchLog.TrySetLevel(level);
        }
    }
}
