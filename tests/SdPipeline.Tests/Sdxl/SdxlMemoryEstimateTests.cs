using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>The pre-flight memory estimate on SDXL base 1.0's full-size graph (built on the meta device: no weights).</summary>
public sealed class SdxlMemoryEstimateTests
{
    private static readonly Device Meta = new("meta");

    [Test]
    public void Estimate_Should_RefuseAFullSdxlFineTuneOnA24GiBCard_AndFitTheLoraDefault()
    {
        // Given SDXL base's UNet and first text encoder (what the train stage loads for a run on cached embeddings)
        using var temp = new TempFolder();
        string configs = SdxlBaseConfigs.Write(temp);
        var config = UNet2DConditionConfig.Load(Path.Combine(configs, "unet", "config.json"));
        using var unet = new UNet2DConditionModel(config, Meta);
        using var textEncoder = new ClipTextModel(ClipTextConfig.Load(Path.Combine(configs, "text_encoder", "config.json")), Meta);
        using var textEncoder2 = ClipTextModelWithProjection.FromConfig(Path.Combine(configs, "text_encoder_2", "config.json"), device: Meta);
        long unetParameters = unet.parameters().Sum(p => p.NumberOfElements);
        long textParameters = textEncoder.parameters().Sum(p => p.NumberOfElements);
        long adapters = LoraNetwork.CountParameters(LoraNetwork.Targets(unet, null, new LoraSettings(4, 4, 0, true, false, false)), 4);

        // When configs/sdxl.json's run (1024 px: 128×128 latents, batch 1, fp16, checkpointing) is estimated full and as LoRA
        var full = MemoryEstimate.For(config, unetParameters, textParameters, false, 1, 128, 128, "fp16", true, false, false, true);
        var lora = MemoryEstimate.For(config, unetParameters, textParameters, false, 1, 128, 128, "fp16", true, false, false, true, adapters);
        TestContext.Out.WriteLine($"SDXL UNet {unetParameters:N0} parameters, LoRA rank 4 {adapters:N0}; full: {full}; LoRA: {lora}");

        // Then the graph is SDXL's (the published parameter counts), a full fine-tune needs more than a 24 GiB card, and LoRA fits one
        Assert.That(unetParameters, Is.EqualTo(2_567_463_684L));
        Assert.That(textParameters + textEncoder2.parameters().Sum(p => p.NumberOfElements), Is.EqualTo(123_060_480L + 694_659_840L));
        Assert.That(MemoryEstimate.Gib(full.Total), Is.GreaterThan(24), "weights, gradients and AdamW alone are 16 bytes × 2.57 G parameters = 38 GiB");
        Assert.That(MemoryEstimate.Gib(lora.Total), Is.LessThan(16));
    }
}
