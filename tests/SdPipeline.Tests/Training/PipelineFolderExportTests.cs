using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;
using SdPipeline.Training;

namespace SdPipeline.Tests.Training;

/// <summary>What makes the train artifact's <c>pipeline/</c> load with a plain <c>from_pretrained</c>.</summary>
public sealed class PipelineFolderExportTests
{
    private static readonly string[] Sd15Components = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"];

    [Test]
    public void ModelIndex_Should_NullTheComponentsTheFolderLacks_ForSd15FromTheHub()
    {
        // Given SD 1.5's own model_index.json, which lists a safety checker and feature extractor the model stage never fetches
        var baseIndex = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "model_index.json")));

        // When the pipeline folder's index is made from it
        var index = PipelineFolderExport.ModelIndex(baseIndex, Sd15Components);

        // Then diffusers finds nothing to load from the folder's root: both are null, and no safety checker is required
        Assert.That(index["safety_checker"]!.ToString(Newtonsoft.Json.Formatting.None), Is.EqualTo("[null,null]"));
        Assert.That(index["feature_extractor"]!.ToString(Newtonsoft.Json.Formatting.None), Is.EqualTo("[null,null]"));
        Assert.That(index.Value<bool>("requires_safety_checker"), Is.False);
        // and every component the folder holds is as the base listed it
        foreach (string component in Sd15Components)
            Assert.That(JToken.DeepEquals(index[component], baseIndex[component]), component);
        Assert.That(index.Value<string>("_class_name"), Is.EqualTo("StableDiffusionPipeline"));
        Assert.That(baseIndex["safety_checker"]![0]!.Type, Is.EqualTo(JTokenType.String), "the base's index is left as it was");
    }

    [Test]
    public void ModelIndex_Should_KeepARequiredSafetyCheckerFlag_When_NoCheckerWasListed()
    {
        var baseIndex = new JObject { ["_class_name"] = "StableDiffusionXLPipeline", ["image_encoder"] = new JArray(JValue.CreateNull(), JValue.CreateNull()), ["unet"] = new JArray("diffusers", "UNet2DConditionModel") };

        var index = PipelineFolderExport.ModelIndex(baseIndex, ["unet"]);

        Assert.That(JToken.DeepEquals(index, baseIndex), Is.True);
    }

    [Test]
    public void SchedulerConfig_Should_BeReadWithTheTrainedPredictionType_When_TheBaseListedItAsADefault()
    {
        // Given a base scheduler config written by diffusers 0.18, whose prediction_type was the class default
        var baseScheduler = JObject.Parse("""
            { "_class_name": "DDIMScheduler", "_use_default_values": ["prediction_type", "timestep_spacing"],
              "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "timestep_spacing": "leading" }
            """);

        // When the pipeline folder's config is made for a UNet trained to predict v
        var scheduler = PipelineFolderExport.SchedulerConfig(baseScheduler, "v_prediction");

        // Then a loader that drops the listed keys, as diffusers' from_config does, reads v_prediction
        var read = SdPipeline.Schedulers.SchedulerConfig.Parse(scheduler.ToString(), "pipeline/scheduler/scheduler_config.json");
        Assert.That(read.PredictionType, Is.EqualTo("v_prediction"));
        // while the other listed key still falls to the loading class's default, as it did for the base
        Assert.That(read.TimestepSpacing, Is.Null);
        Assert.That(baseScheduler.Value<string>("prediction_type"), Is.EqualTo("epsilon"), "the base's config is left as it was");
    }

    [Test]
    public void LinkComponent_Should_LinkTheVariantsWeightsUnderThePlainNames()
    {
        // Given a base VAE fetched as the fp16 variant (config.json and the fp16 weights), with a full-precision file beside it too
        using var temp = new TempFolder();
        string vae = Directory.CreateDirectory(temp.File("base-vae")).FullName;
        File.WriteAllText(Path.Combine(vae, "config.json"), "{}");
        File.WriteAllText(Path.Combine(vae, "diffusion_pytorch_model.fp16.safetensors"), "half");
        File.WriteAllText(Path.Combine(vae, "diffusion_pytorch_model.safetensors"), "full");

        // When it is linked into a pipeline folder with the variant
        string linked = temp.File("vae");
        PipelineFolderExport.LinkComponent(vae, linked, "fp16");

        // Then the plain name holds the variant training read, and nothing else is named after the variant
        Assert.That(Directory.GetFiles(linked).Select(Path.GetFileName), Is.EquivalentTo(new[] { "config.json", "diffusion_pytorch_model.safetensors" }));
        Assert.That(File.ReadAllText(Path.Combine(linked, "diffusion_pytorch_model.safetensors")), Is.EqualTo("half"));
        Assert.That(File.ReadAllText(Path.Combine(linked, "config.json")), Is.EqualTo("{}"));
    }

    [Test]
    public void LinkComponent_Should_LinkTheWholeFolder_WithoutAVariant()
    {
        using var temp = new TempFolder();
        string vae = Directory.CreateDirectory(temp.File("base-vae")).FullName;
        File.WriteAllText(Path.Combine(vae, "diffusion_pytorch_model.safetensors"), "full");

        string linked = temp.File("vae");
        PipelineFolderExport.LinkComponent(vae, linked, null);

        Assert.That(new DirectoryInfo(linked).LinkTarget, Is.EqualTo(vae));
        Assert.That(File.ReadAllText(Path.Combine(linked, "diffusion_pytorch_model.safetensors")), Is.EqualTo("full"));
    }
}
