using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Pipeline;
using SdPipeline.Reporting;
using SdPipeline.Sampling;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>The whole chain on the tiny SDXL model: cache, diffusers' SDXL training step (full and LoRA), samples and the report.</summary>
public sealed class SdxlTrainingTests
{
    private static readonly string[] Chain = ["model", "download", "latents", "train", "sample", "report"];

    // 16 px images (8×8 latents: the tiny VAE downsamples once), random crops and flips so the time ids vary.
    private static string[] Sets(params string[] more) =>
    [
        $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", $"model.base={TinySdxl.Folder}", "download.count=24",
        "latents.resolution=16", "latents.random_flip=true", "latents.variants=2",
        "train.train_batch_size=4", "train.max_train_steps=12", "train.validation_steps=12", "train.lr_warmup_steps=0", "train.learning_rate=1e-3",
        "train.heldout_max_items=8", "train.checkpointing_steps=0",
        """sample.prompts=["a red circle on a blue background"]""", "sample.heldout_prompts=1", "sample.seeds=3", "sample.steps=3", "sample.guidance_scale=5",
        .. more,
    ];

    private static List<JObject> Evals(string trainFolder) =>
        File.ReadLines(Path.Combine(trainFolder, FineTuner.MetricsFile)).Select(JObject.Parse).Where(j => j["kind"]!.ToString() == "eval").ToList();

    [Test]
    public void ReportRun_Should_TrainTheTinySdxl_LoweringTheHeldoutLoss_AndSampleIt()
    {
        // Given the whole chain on tiny-sdxl and a small shapes set
        using var harness = new PipelineHarness();
        string[] sets = Sets();

        // When it runs to the report
        var report = harness.RunChain(Chain, sets);

        // Then the fine-tuned UNet's held-out loss is below the base's
        var train = harness.Plan("train", sets).ArtifactDirectory!;
        var evals = Evals(train);
        Assert.That(evals.First()["step"]!.Value<int>(), Is.EqualTo(0));
        Assert.That(evals.Last()["heldout_loss"]!.Value<double>(), Is.LessThan(evals.First()["heldout_loss"]!.Value<double>()));

        // And the result is a complete SDXL diffusers folder that the strict loader takes, holding the trained UNet
        using (var pipeline = StableDiffusionXLPipeline.FromFolder(DiffusersFolder.Open(Path.Combine(train, TrainStage.PipelineFolder)), CPU))
        using (var trained = SafeTensorsFile.Open(Path.Combine(train, "unet", "diffusion_pytorch_model.safetensors")))
        using (var based = SafeTensorsFile.Open(Path.Combine(TinySdxl.Folder, "unet", "diffusion_pytorch_model.safetensors")))
        {
            Assert.That(trained.Bytes(trained.Entry("add_embedding.linear_1.weight")).ToArray(),
                Is.Not.EqualTo(based.Bytes(based.Entry("add_embedding.linear_1.weight")).ToArray()), "the text_time embedding trained");
            Assert.That(pipeline.Unet.Config.HasTextTimeEmbedding, Is.True);
        }

        // And beside it the single file in SGM's layout, holding the trained UNet
        string single = Path.Combine(train, SingleFileDeliverable.FileName);
        using (var file = SafeTensorsFile.Open(single))
        using (var trained = SafeTensorsFile.Open(Path.Combine(train, "unet", "diffusion_pytorch_model.safetensors")))
        {
            Assert.That(SdPipeline.SingleFileCheckpoints.SingleFileArchitecture.Family(file), Is.EqualTo(SdPipeline.SingleFileCheckpoints.SingleFileFamily.StableDiffusionXL));
            using var labelEmbedding = file.Read("model.diffusion_model.label_emb.0.0.weight");
            using var addEmbedding = trained.Read("add_embedding.linear_1.weight");
            Assert.That(labelEmbedding.to(ScalarType.Float32).allclose(addEmbedding.to(ScalarType.Float16).to(ScalarType.Float32)), Is.True, "the trained weight, in train.export_dtype (fp16)");
        }

        // And the sample stage drew from the base and the fine-tuned SDXL at the cache's resolution, and the report has them
        var sample = harness.Plan("sample", sets).ArtifactDirectory!;
        var records = JsonConvert.DeserializeObject<List<SampleRecord>>(File.ReadAllText(Path.Combine(sample, SampleStage.SamplesFile)))!;
        Assert.That(records, Has.Count.EqualTo(2));
        var text = SdPipeline.Images.PngText.Read(File.ReadAllBytes(Path.Combine(sample, records[0].FineTuned)));
        Assert.That((text["size"], text["sampler"]), Is.EqualTo(("16x16", "euler")), "the SDXL scheduler config's own sampler");
        Assert.That(records[0].FineTuned, Is.Not.EqualTo(records[0].Base));
        Assert.That(File.ReadAllBytes(Path.Combine(sample, records[0].FineTuned)), Is.Not.EqualTo(File.ReadAllBytes(Path.Combine(sample, records[0].Base))),
            "the fine-tuned model draws another image from the same noise");
        Assert.That(File.Exists(Path.Combine(report.Directory, ReportStage.DeliverablesFolder, ReportWriter.HtmlFileName)), Is.True);
    }

    [Test]
    public void LoraRun_Should_TrainTheUnetAndBothTextEncoders_AndRoundTripThroughBothLayouts()
    {
        // Given a LoRA run on tiny-sdxl with the text encoders' adapters too, and validation images
        using var harness = new PipelineHarness();
        string[] sets = Sets("train.method=lora", "train.train_text_encoder=true", "train.learning_rate=1e-2", "train.lora_rank=2",
            $"train.validation_prompts={new JArray(ValidationPrompts[0]).ToString(Formatting.None)}", "train.validation_inference_steps=2");

        // When it trains and samples
        harness.RunChain(["model", "download", "latents", "train", "sample"], sets);

        // Then the held-out loss fell, and the files name the UNet and both encoders in each layout
        var train = harness.Plan("train", sets).ArtifactDirectory!;
        Assert.That(Evals(train).Last()["heldout_loss"]!.Value<double>(), Is.LessThan(Evals(train).First()["heldout_loss"]!.Value<double>()));
        var validation = ValidationImages.Read(train)!;
        Assert.That(validation.Steps.Select(s => s.Step), Is.EqualTo(new long[] { 0, 12 }));
        Assert.That(File.ReadAllBytes(validation.Steps[1].Files[0]!), Is.Not.EqualTo(File.ReadAllBytes(validation.Steps[0].Files[0]!)),
            "validation sampled through the trained adapters");
        string diffusersFile = Path.Combine(train, TrainStage.LoraFolder, LoraFile.DiffusersFileName);
        string kohyaFile = Path.Combine(train, TrainStage.LoraFolder, LoraFile.KohyaFileName);
        Assert.That(Names(diffusersFile).Select(n => n.Split('.')[0]).Distinct(), Is.EquivalentTo(new[] { "unet", "text_encoder", "text_encoder_2" }));
        Assert.That(Names(diffusersFile), Has.Member("text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"));
        Assert.That(Names(kohyaFile).Select(n => n[..(n.IndexOf('_', 5) + 1)]).Distinct(), Is.EquivalentTo(new[] { "lora_unet_", "lora_te1_", "lora_te2_" }));
        Assert.That(Names(kohyaFile), Has.Member("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight")
            .And.Member("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha")
            .And.Member("lora_unet_input_blocks_3_1_transformer_blocks_1_attn2_to_k.lora_up.weight"));
        Assert.That(Names(kohyaFile).Where(n => n.StartsWith("lora_unet_", StringComparison.Ordinal) && !n.StartsWith("lora_unet_input_blocks_", StringComparison.Ordinal)
            && !n.StartsWith("lora_unet_middle_block_", StringComparison.Ordinal) && !n.StartsWith("lora_unet_output_blocks_", StringComparison.Ordinal)), Is.Empty,
            "the UNet's adapters are named in the original block numbering, as kohya's SDXL trainer writes them (tiny-sdxl's second down level's attention is input_blocks.3.1)");
        using (var kohya = SdPipeline.Weights.SafeTensorsFile.Open(kohyaFile))
            Assert.That(kohya.Metadata["ss_base_model_version"], Is.EqualTo("sdxl_base_v1-0"), "what AUTOMATIC1111's Lora tab needs to list it beside an SDXL checkpoint");

        // And both files read back, against the SDXL model's layers, as the same adapters with the same values
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        using var textEncoder = ClipTextModel.FromPretrained(TinySdxl.Open());
        using var textEncoder2 = ClipTextModelWithProjection.FromPretrained(TinySdxl.Open());
        var layers = LoraNetwork.Layers(unet, textEncoder, textEncoder2).Keys.ToList();
        var (fromDiffusers, diffusersModules) = LoraFile.Read(diffusersFile, layers);
        var (fromKohya, kohyaModules) = LoraFile.Read(kohyaFile, layers);
        Assert.That((fromDiffusers, fromKohya), Is.EqualTo((LoraLayout.Diffusers, LoraLayout.Kohya)));
        Assert.That(kohyaModules.Select(m => (m.Component, m.Path)), Is.EquivalentTo(diffusersModules.Select(m => (m.Component, m.Path))));
        var byLayer = kohyaModules.ToDictionary(m => (m.Component, m.Path));
        foreach (var module in diffusersModules)
        {
            var other = byLayer[(module.Component, module.Path)];
            Assert.That(other.Down.data<float>().ToArray(), Is.EqualTo(module.Down.data<float>().ToArray()), $"{module.Component}.{module.Path} down");
            Assert.That(other.Up.data<float>().ToArray(), Is.EqualTo(module.Up.data<float>().ToArray()), $"{module.Component}.{module.Path} up");
            Assert.That(other.Alpha, Is.EqualTo(module.Alpha));
        }
        Assert.That(diffusersModules.Where(m => m.Component != LoraNetwork.Unet).Any(m => m.Up.abs().max().item<float>() > 0), Is.True,
            "the text encoders' adapters trained (lora_B starts at zero)");

        // And sdpipe lora convert goes kohya → diffusers with the model folder and gives the diffusers file's tensors back
        using var temp = new TempFolder();
        LoraConverter.Convert(kohyaFile, temp.File("back.safetensors"), LoraLayout.Diffusers, TinySdxl.Open());
        Assert.That(Bytes(temp.File("back.safetensors")), Is.EqualTo(Bytes(diffusersFile)));

        // And the sample stage applied the LoRA to the SDXL base
        var sample = harness.Plan("sample", sets).ArtifactDirectory!;
        var records = JsonConvert.DeserializeObject<List<SampleRecord>>(File.ReadAllText(Path.Combine(sample, SampleStage.SamplesFile)))!;
        Assert.That(SdPipeline.Images.PngText.Read(File.ReadAllBytes(Path.Combine(sample, records[0].FineTuned)))["lora"], Is.EqualTo(LoraFile.DiffusersFileName));
        foreach (var module in diffusersModules.Concat(kohyaModules))
        {
            module.Down.Dispose();
            module.Up.Dispose();
        }
    }

    [Test]
    public void TrainStage_Should_RefuseTrainingTheTextEncodersInAFullSdxlFineTune_NamingTheKey()
    {
        using var harness = new PipelineHarness();
        string[] sets = Sets("train.train_text_encoder=true", "download.count=4");
        harness.RunChain(["model", "download", "latents"], sets);

        var error = Assert.Throws<SdPipeline.Config.ConfigException>(() => harness.Run("train", sets));
        Assert.That(error!.Message, Does.Contain("Stable Diffusion XL").And.Contain("train.train_text_encoder").And.Contain("train.method=lora"));
    }

    [Test]
    public void CaptionDropoutAndTagShuffling_Should_ChangeTheSdxlTrainingSteps_AndNotTheHeldoutEvaluation()
    {
        // Given tagged captions (shuffling reorders all but the first tag) and three runs: plain, with dropout, with shuffling
        using var harness = new PipelineHarness();
        var images = Enumerable.Range(0, 16).Select(i => ($"{i:D2}.png", Png(i), $"item {i}, {Colours[i % 4]}, {Shapes[i % 3]}, {Colours[(i + 1) % 4]} background")).ToList();
        string[] Run(params string[] more) =>
        [
            .. harness.ImageFolder(images), $"model.base={TinySdxl.Folder}", "latents.resolution=16", "download.heldout_fraction=0.25",
            "train.train_batch_size=4", "train.max_train_steps=4", "train.lr_warmup_steps=0", "train.learning_rate=1e-3", "train.checkpointing_steps=0", .. more,
        ];
        string[] plain = Run(), dropped = Run("train.caption_dropout=0.5"), shuffled = Run("train.shuffle_tags=true", "train.keep_tags=1");

        // When each trains
        foreach (var sets in new[] { plain, dropped, shuffled }) harness.RunChain(["model", "download", "latents", "train"], sets);

        // Then dropout and shuffling each changed what the UNet learned (the text it was conditioned on), while the base
        // model's held-out loss, measured on the cached captions, is the same in all three
        var weights = new[] { plain, dropped, shuffled }.Select(sets => UnetBytes(harness.Plan("train", sets).ArtifactDirectory!)).ToList();
        Assert.That(weights[1]["add_embedding.linear_1.weight"], Is.Not.EqualTo(weights[0]["add_embedding.linear_1.weight"]), "caption dropout changed the steps");
        Assert.That(weights[2]["add_embedding.linear_1.weight"], Is.Not.EqualTo(weights[0]["add_embedding.linear_1.weight"]), "tag shuffling changed the steps");
        var baseline = new[] { plain, dropped, shuffled }.Select(sets => Evals(harness.Plan("train", sets).ArtifactDirectory!)[0]["heldout_loss"]!.Value<double>()).ToList();
        Assert.That(baseline.Distinct().Count(), Is.EqualTo(1), "held-out evaluation reads the cached captions, unaugmented");
    }

    [Test]
    public void ValidationPrompts_Should_SampleTheSdxlBeingTrained_WithoutChangingTheTrainedWeights()
    {
        // Given the same SDXL run with and without validation prompts (EMA on: validation samples the EMA weights and restores the trained ones)
        using var harness = new PipelineHarness();
        string[] plain = Sets("train.max_train_steps=4", "train.validation_steps=2", "train.use_ema=true", "train.validation_inference_steps=3", "train.validation_guidance_scale=5");
        string[] validated = [.. plain, $"train.validation_prompts={new JArray(ValidationPrompts).ToString(Formatting.None)}"];
        harness.RunChain(["model", "download", "latents", "train"], plain);
        harness.Run("train", validated);
        string plainFolder = harness.Plan("train", plain).ArtifactDirectory!, validatedFolder = harness.Plan("train", validated).ArtifactDirectory!;

        // Then the trained weights are the same bit for bit
        var expected = UnetBytes(plainFolder);
        var actual = UnetBytes(validatedFolder);
        Assert.That(actual.Keys, Is.EquivalentTo(expected.Keys));
        foreach (var (name, bytes) in expected) Assert.That(actual[name], Is.EqualTo(bytes), name);

        // And there is one image per prompt before training, every 2 steps and at the end
        var series = ValidationImages.Read(validatedFolder)!;
        Assert.That(series.Prompts, Is.EqualTo(ValidationPrompts));
        Assert.That(series.Steps.Select(s => s.Step), Is.EqualTo(new long[] { 0, 2, 4 }));
        Assert.That(series.Steps.SelectMany(s => s.Files), Has.All.Not.Null);
        var first = SdPipeline.Images.ImageCodec.DecodeRgb(File.ReadAllBytes(series.Steps[0].Files[1]!));
        var last = SdPipeline.Images.ImageCodec.DecodeRgb(File.ReadAllBytes(series.Steps[^1].Files[1]!));
        Assert.That((first.Width, first.Height), Is.EqualTo((16, 16)));
        Assert.That(last.Pixels, Is.Not.EqualTo(first.Pixels), "the weights changed between the first and the last row");

        // And the step-0 image is StableDiffusionXLPipeline's for the same prompt and seed (no negative prompt, as log_validation calls it)
        using var pipeline = StableDiffusionXLPipeline.FromFolder(TinySdxl.Open(), CPU);
        var result = pipeline.Generate(new TextToImageRequest([ValidationPrompts[1]], [0], null, 5, 3, "euler", 16, 16));
        Assert.That(first.Pixels, Is.EqualTo(result.Images[0].Pixels));
        result.Latents.Dispose();
        result.Decoded.Dispose();
    }

    private static readonly string[] ValidationPrompts = ["a red circle on a blue background", "a green square on a white background"];
    private static readonly string[] Colours = ["red", "green", "blue", "yellow"];
    private static readonly string[] Shapes = ["circle", "square", "triangle"];

    // A 32 px image whose colours depend on i, so the cached latents differ item to item.
    private static byte[] Png(int i)
    {
        var image = new SdPipeline.Images.RgbImage(32, 32);
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                image.Set(x, y, (byte)(i * 16), (byte)(y * 8), (byte)((x * 8 + i * 40) % 256));
        return SdPipeline.Images.ImageCodec.EncodePng(image);
    }

    private static Dictionary<string, byte[]> UnetBytes(string trainFolder)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(trainFolder, "unet", "diffusion_pytorch_model.safetensors"));
        return file.Entries.ToDictionary(e => e.Name, e => file.Bytes(e).ToArray());
    }

    private static List<string> Names(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Entries.Select(e => e.Name).ToList();
    }

    private static Dictionary<string, byte[]> Bytes(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Entries.ToDictionary(e => e.Name, e => file.Bytes(e).ToArray());
    }
}
