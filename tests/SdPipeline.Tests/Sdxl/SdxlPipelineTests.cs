using SdPipeline.BaseModel;
using SdPipeline.Sampling;
using SdPipeline.Schedulers;
using SdPipeline.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>Loading an SDXL diffusers folder and sampling it with every sampler.</summary>
public sealed class SdxlPipelineTests
{
    [Test]
    public void ModelFiles_Should_SelectTheSecondEncoderAndTokenizer_When_TheFolderIsSdxl()
    {
        var files = ModelFiles.Select(TinySdxl.Open(), variant: null);

        Assert.That(files, Does.Contain("text_encoder_2/model.safetensors").And.Contain("text_encoder_2/config.json"));
        Assert.That(files, Does.Contain("tokenizer_2/vocab.json").And.Contain("tokenizer_2/merges.txt").And.Contain("tokenizer_2/special_tokens_map.json"));
        Assert.That(files, Does.Contain("unet/diffusion_pytorch_model.safetensors").And.Contain("text_encoder/model.safetensors"));
    }

    [TestCaseSource(typeof(SchedulerFactory), nameof(SchedulerFactory.Names))]
    public void Generate_Should_GiveTheSameFiniteImageForASeed_When_AnySamplerRuns(string sampler)
    {
        // Given the tiny SDXL pipeline and a non-square request with guidance and no negative prompt (zero embeddings)
        using var scope = torch.NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromFolder(TinySdxl.Open(), torch.CPU);
        var request = new TextToImageRequest(["a red circle", "a blue square"], [1, 2], NegativePrompt: null, GuidanceScale: 5, Steps: 3,
            Sampler: sampler, Width: 24, Height: 16);

        // When it generates twice
        var first = pipeline.Generate(request);
        var second = pipeline.Generate(request);

        // Then the images are 24×16, finite and repeatable, and the two seeds give different images
        Assert.That(first.Images, Has.Count.EqualTo(2));
        Assert.That((first.Images[0].Width, first.Images[0].Height), Is.EqualTo((24, 16)));
        Assert.That(first.Latents.isfinite().all().item<bool>(), Is.True);
        Assert.That((first.Decoded - second.Decoded).abs().max().item<float>(), Is.Zero);
        Assert.That((first.Latents[0] - first.Latents[1]).abs().max().item<float>(), Is.GreaterThan(1e-3f));
    }

    [Test]
    public void Generate_Should_EncodeTheEmptyNegative_When_ItIsGivenExplicitly()
    {
        // Given the same request with no negative prompt and with an explicit ""
        using var scope = torch.NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromFolder(TinySdxl.Open(), torch.CPU);
        var none = new TextToImageRequest(["a red circle"], [7], NegativePrompt: null, GuidanceScale: 5, Steps: 2, Sampler: "euler", Width: 16, Height: 16);

        // When both run
        var zeros = pipeline.Generate(none);
        var empty = pipeline.Generate(none with { NegativePrompt = "" });

        // Then they differ: force_zeros_for_empty_prompt zeroes only an absent negative prompt
        Assert.That(pipeline.ForceZerosForEmptyPrompt, Is.True);
        Assert.That((zeros.Latents - empty.Latents).abs().max().item<float>(), Is.GreaterThan(1e-4f));
    }

    [Test]
    public void Generate_Should_EncodeEachNegativePrompt_When_APerPromptListIsGiven()
    {
        // Given two prompts with one negative prompt each, and the same negatives given one request at a time
        using var scope = torch.NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromFolder(TinySdxl.Open(), torch.CPU);
        var both = new TextToImageRequest(["a red circle", "a blue square"], [7, 8], NegativePrompt: null, GuidanceScale: 5, Steps: 2, Sampler: "euler",
            Width: 16, Height: 16) { NegativePrompts = ["blurry", ""] };
        var first = new TextToImageRequest(["a red circle"], [7], NegativePrompt: "blurry", GuidanceScale: 5, Steps: 2, Sampler: "euler", Width: 16, Height: 16);
        var second = new TextToImageRequest(["a blue square"], [8], NegativePrompt: "", GuidanceScale: 5, Steps: 2, Sampler: "euler", Width: 16, Height: 16);

        // When all three run
        var listed = pipeline.Generate(both);
        var one = pipeline.Generate(first);
        var two = pipeline.Generate(second);

        // Then each image of the list is the one its own negative prompt gives (not the zero embeddings of no negative prompt)
        Assert.That((listed.Latents[0] - one.Latents[0]).abs().max().item<float>(), Is.LessThan(1e-4f));
        Assert.That((listed.Latents[1] - two.Latents[0]).abs().max().item<float>(), Is.LessThan(1e-4f));
        Assert.That(() => pipeline.Generate(both with { NegativePrompts = ["blurry"] }), Throws.ArgumentException);
    }

    [Test]
    public void RandomWeightsFolder_Should_MakeAnSdxlFolderThePipelineLoads_When_TheConfigsAreSdxl()
    {
        // Given tiny-sdxl's configs (only its configs and tokenizer settings are read)
        using var temp = new TempFolder();
        string output = temp.File("random-sdxl");

        // When a random-weight folder is made from them
        RandomWeightsFolder.Write(TinySdxl.Folder, Path.Combine(TinySdxl.Folder, "tokenizer"), output, seed: 5);

        // Then every component loads strictly, the second encoder keeps its projection, the second tokenizer pads with "!",
        // and the pipeline samples from it
        using var scope = torch.NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromFolder(SdPipeline.Weights.DiffusersFolder.Open(output), torch.CPU);
        Assert.That(pipeline.PromptEncoder.TextEncoder2.ProjectionDim, Is.EqualTo(20));
        Assert.That(pipeline.PromptEncoder.Tokenizer2.PadId, Is.Zero);
        using var real = SdPipeline.Models.Unet.UNet2DConditionModel.FromFolder(TinySdxl.Open());
        Assert.That(pipeline.Unet.state_dict().Keys, Is.EqualTo(real.state_dict().Keys));
        Assert.That((pipeline.Unet.state_dict()["add_embedding.linear_1.weight"] - real.state_dict()["add_embedding.linear_1.weight"]).abs().max().item<float>(),
            Is.GreaterThan(0f));
        var result = pipeline.Generate(new TextToImageRequest(["x"], [1], null, 5, 2, "euler", 16, 16));
        Assert.That(result.Latents.isfinite().all().item<bool>(), Is.True);
    }

    [Test]
    public void Generate_Should_UndoTheVaesLatentNormalisation_When_TheVaeConfigPublishesMeanAndStd()
    {
        // Given tiny-sdxl with a VAE config that publishes per-channel latents_mean and latents_std (as Playground v2.5's does)
        using var temp = new TempFolder();
        string folder = temp.File("normalised-sdxl");
        Directory.CreateDirectory(Path.Combine(folder, "vae"));
        foreach (string entry in Directory.EnumerateFileSystemEntries(TinySdxl.Folder).Select(Path.GetFileName).OfType<string>())
        {
            if (entry == "vae") continue;
            if (Directory.Exists(Path.Combine(TinySdxl.Folder, entry))) Directory.CreateSymbolicLink(Path.Combine(folder, entry), Path.Combine(TinySdxl.Folder, entry));
            else File.CreateSymbolicLink(Path.Combine(folder, entry), Path.Combine(TinySdxl.Folder, entry));
        }
        File.CreateSymbolicLink(Path.Combine(folder, "vae", "diffusion_pytorch_model.safetensors"), Path.Combine(TinySdxl.Folder, "vae", "diffusion_pytorch_model.safetensors"));
        var vaeConfig = Newtonsoft.Json.Linq.JObject.Parse(File.ReadAllText(Path.Combine(TinySdxl.Folder, "vae", "config.json")));
        double[] mean = [-1.5, 1.75, -0.5, 2.5], std = [8.5, 6.0, 6.5, 5.25];
        vaeConfig["latents_mean"] = new Newtonsoft.Json.Linq.JArray(mean);
        vaeConfig["latents_std"] = new Newtonsoft.Json.Linq.JArray(std);
        File.WriteAllText(Path.Combine(folder, "vae", "config.json"), vaeConfig.ToString());

        // When it generates
        using var scope = torch.NewDisposeScope();
        using var pipeline = StableDiffusionXLPipeline.FromFolder(SdPipeline.Weights.DiffusersFolder.Open(folder), torch.CPU);
        var result = pipeline.Generate(new TextToImageRequest(["a red circle"], [1], null, 5, 2, "euler", 16, 16));

        // Then the VAE decoded latents · std / scaling_factor + mean, as diffusers' StableDiffusionXLPipeline decodes them
        var unscaled = result.Latents * torch.tensor(std, [1, 4, 1, 1]).to(torch.float32) / 0.13025 + torch.tensor(mean, [1, 4, 1, 1]).to(torch.float32);
        var expected = pipeline.Vae.Decode(unscaled);
        Assert.That((result.Decoded - expected).abs().max().item<float>(), Is.LessThan(1e-5f));
    }
}
