using SdPipeline.BaseModel;
using SdPipeline.Benchmarks;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Training;

/// <summary>
/// Training picks the convolution path its measurements favour for the UNet's width (docs/performance.md): libtorch's
/// own for full-size Stable Diffusion, oneDNN for the narrow models of the tiny profile and the fixtures.
/// </summary>
public sealed class TrainingConvolutionsTests
{
    [Test]
    public void FullSizeUnets_Should_TrainOnLibtorchsConvolutions_When_OneDnnIsAuto()
    {
        // SD 1.5 (320–1280 channels) and SDXL base (320–1280): measured faster without oneDNN on Intel and AMD
        Assert.That(TrainingConvolutions.OneDnnOffReason(Sd15Configs.Unet, autocast: false), Does.Contain("320+ channels").And.Contain("runtime.onednn=on"));
        var sdxl = UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sdxl", "unet", "config.json")) with { BlockOutChannels = [320, 640, 1280] };
        Assert.That(TrainingConvolutions.OneDnnOffReason(sdxl, autocast: false), Is.Not.Null);
    }

    [Test]
    public void FullSizeUnets_Should_KeepOneDnn_When_TrainingUnderAutocast()
    {
        // bf16/fp16 convolutions are fast only in oneDNN (the Xeon's AMX): 2.38 s a step with it, over ten minutes without
        Assert.That(TrainingConvolutions.OneDnnOffReason(Sd15Configs.Unet, autocast: true), Is.Null);
    }

    [Test]
    public void NarrowUnets_Should_KeepOneDnn_When_OneDnnIsAuto()
    {
        // tiny-sd (32–64 channels) and the tiny profile's builtin model (64–128): measured faster with oneDNN
        Assert.That(TrainingConvolutions.OneDnnOffReason(UNet2DConditionConfig.Load(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "unet", "config.json")), autocast: false), Is.Null);
        Assert.That(TrainingConvolutions.OneDnnOffReason(UNet2DConditionConfig.Parse(BuiltinTiny.UnetConfig, "builtin:tiny unet"), autocast: false), Is.Null);
    }
}
