using Newtonsoft.Json.Linq;
using SdPipeline.Images;
using SdPipeline.Pipeline;
using SdPipeline.Progress;
using SdPipeline.Sampling;
using SdPipeline.Stages;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Tests.Training;

/// <summary>train.validation_prompts: images from the weights being trained, every validation_steps, that change nothing of the training.</summary>
public sealed class ValidationImagesTests
{
    private static readonly string[] Prompts = ["a red circle on a blue background", "a green square on a white background"];

    private static readonly string[] Small =
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", "model.base=builtin:tiny", "model.builtin_autoencoder_steps=0", "download.count=24", "latents.resolution=64", "latents.center_crop=true",
        "train.train_batch_size=4", "train.max_train_steps=5", "train.lr_warmup_steps=0", "train.learning_rate=1e-3", "train.use_ema=true",
        "train.validation_steps=2", "train.checkpointing_steps=0", "train.heldout_max_items=4",
        "train.validation_inference_steps=4", "train.validation_guidance_scale=2",
    ];

    private static string[] WithPrompts => [.. Small, $"train.validation_prompts={new JArray(Prompts).ToString(Newtonsoft.Json.Formatting.None)}"];

    private static BuildOutcome Train(PipelineHarness harness, string[] sets)
    {
        harness.RunChain(["model", "download", "latents"], sets);
        return new StageExecutor(ProjectStages.Graph, harness.Store, new FileHashCache(null))
            .Run("train", PipelineHarness.Config(sets), false, line => harness.Log.Add(line), NullProgress.Instance, CancellationToken.None);
    }

    private static Dictionary<string, byte[]> Weights(string folder)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors"));
        return file.Entries.ToDictionary(e => e.Name, e => file.Bytes(e).ToArray());
    }

    [Test, Category("Slow")]
    public void ValidationPrompts_Should_SampleEveryValidationStep_WithoutChangingTheTrainedWeights()
    {
        // Given the same run with and without validation prompts (EMA on: validation samples the EMA weights and puts the trained ones back)
        using var harness = new PipelineHarness();
        var plain = Train(harness, Small);
        var validated = Train(harness, WithPrompts);

        // Then the trained weights are the same bit for bit: sampling draws from its own generators and restores the weights
        var expected = Weights(plain.Directory);
        var actual = Weights(validated.Directory);
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (name, bytes) in expected)
            Assert.That(actual[name], Is.EqualTo(bytes), name);

        // And one image per prompt before training, every 2 steps and at the end, named by step and prompt
        var series = ValidationImages.Read(validated.Directory)!;
        Assert.That(series.Prompts, Is.EqualTo(Prompts));
        Assert.That(series.Steps.Select(s => s.Step), Is.EqualTo(new long[] { 0, 2, 4, 5 }));
        Assert.That(series.Steps.SelectMany(s => s.Files), Has.All.Not.Null);
        Assert.That(File.Exists(Path.Combine(validated.Directory, ValidationImages.FolderName, "step-000004-prompt-01.png")), Is.True);
        Assert.That(ValidationImages.Read(plain.Directory), Is.Null, "no prompts, no validation folder");
        var images = series.Steps.Select(s => s.Files.Select(f => File.ReadAllBytes(f!)).ToList()).ToList();
        Assert.That(images[0][0], Is.Not.EqualTo(images[^1][0]), "the weights changed between the first and the last row");
        Assert.That(images[0][0], Is.Not.EqualTo(images[0][1]), "each prompt has its own image");
        Assert.That(images.SelectMany(row => row).Select(png => ImageFlags.Check(png)), Has.All.Null, "no black or constant image");
    }

    [Test, Category("Slow")]
    public void ValidationImages_Should_BeTheBaseModelsImage_AtStepZero_AndReachTensorBoard()
    {
        using var harness = new PipelineHarness();
        var outcome = Train(harness, [.. WithPrompts, "train.max_train_steps=2"]);

        // The step-0 row is what the base model's pipeline makes for the same prompt and seed: validation samples as the sample stage does
        var model = ModelFolder(harness);
        using var pipeline = StableDiffusionPipeline.FromFolder(DiffusersFolder.Open(model), torch.CPU);
        var result = pipeline.Generate(new TextToImageRequest([Prompts[1]], [0], "", 2, 4, "pndm", 64, 64));
        var series = ValidationImages.Read(outcome.Directory)!;
        var atZero = ImageCodec.DecodeRgb(File.ReadAllBytes(series.Steps[0].Files[1]!));
        Assert.That(atZero.Pixels, Is.EqualTo(result.Images[0].Pixels));

        // And every image is in the TensorBoard event file as an image summary at its step
        var images = TensorBoardEvents.Read(Path.Combine(outcome.Directory, TensorBoardLog.FolderName))
            .Where(e => e.Summary is not null)
            .SelectMany(e => e.Summary.Value.Where(v => v.Image is not null).Select(v => (e.Step, v.Tag, v.Image)))
            .ToList();
        Assert.That(images.Select(i => $"{i.Tag}@{i.Step}"), Is.EquivalentTo(new[]
        {
            "validation/prompt-00@0", "validation/prompt-01@0", "validation/prompt-00@2", "validation/prompt-01@2",
        }));
        Assert.That(images.All(i => i.Image.Width == 64 && i.Image.Height == 64), Is.True);
        var fromTensorBoard = ImageCodec.DecodeRgb(images.Single(i => i.Tag == "validation/prompt-01" && i.Step == 0).Image.EncodedImageString.ToByteArray());
        Assert.That(fromTensorBoard.Pixels, Is.EqualTo(atZero.Pixels), "TensorBoard shows the image that was written");
    }

    private static string ModelFolder(PipelineHarness harness) =>
        SdPipeline.BaseModel.ResolvedModel.Read(harness.Plan("model", [.. WithPrompts]).ArtifactDirectory!).Folder;
}
