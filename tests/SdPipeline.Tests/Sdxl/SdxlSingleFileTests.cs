using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Models.Vae;
using SdPipeline.Sampling;
using SdPipeline.SingleFileCheckpoints;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>
/// SDXL as one original-layout file, in SGM's names (those of <c>sd_xl_base_1.0.safetensors</c>, and of diffusers'
/// <c>convert_diffusers_to_original_sdxl.py</c> but for its untransposed <c>text_projection.weight</c>): the UNet under
/// <c>model.diffusion_model.</c>, the VAE under <c>first_stage_model.</c>, CLIP ViT-L under
/// <c>conditioner.embedders.0.transformer.</c>, OpenCLIP ViT-bigG under <c>conditioner.embedders.1.model.</c>.
/// </summary>
public sealed class SdxlSingleFileTests
{
    private static string Component(string name, string file) => Path.Combine(TinySdxl.Folder, name, file);

    private static SingleFileExporter.Components TinySdxlComponents() => new(
        [Component("unet", "diffusion_pytorch_model.safetensors")], UNet2DConditionConfig.Load(Component("unet", "config.json")),
        [Component("vae", "diffusion_pytorch_model.safetensors")], AutoencoderKLConfig.Load(Component("vae", "config.json")),
        [Component("text_encoder", "model.safetensors")], ClipTextConfig.Load(Component("text_encoder", "config.json")),
        "epsilon")
    {
        TextEncoder2Files = [Component("text_encoder_2", "model.safetensors")],
    };

    private static Tensor Read(string path, string name)
    {
        using var file = SafeTensorsFile.Open(path);
        return file.Read(name);
    }

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Test]
    public void Export_Should_WriteSgmNames_WithFusedOpenClipAttention_AndTheProjectionTransposed()
    {
        // Given tiny-sdxl written as one float32 file
        using var temp = new TempFolder();
        string path = temp.File("sdxl.safetensors");
        SingleFileExporter.Write(TinySdxlComponents(), path, ScalarType.Float32);
        using var file = SafeTensorsFile.Open(path);
        using var scope = NewDisposeScope();
        string te2 = Component("text_encoder_2", "model.safetensors");

        // Then every key is under one of SGM's four prefixes, none under SD's cond_stage_model
        string[] prefixes = [LdmNames.UnetPrefix, LdmNames.VaePrefix, LdmNames.SdxlClipPrefix, LdmNames.SdxlOpenClipPrefix];
        Assert.That(file.Entries.Select(e => e.Name).Where(n => !prefixes.Any(p => n.StartsWith(p, StringComparison.Ordinal))), Is.Empty);

        // And the named tensors are the diffusers ones they stand for (hand-checked against SGM's module tree)
        Assert.That(Same(file.Read("model.diffusion_model.label_emb.0.0.weight"), Read(Component("unet", "diffusion_pytorch_model.safetensors"), "add_embedding.linear_1.weight")), Is.True);
        Assert.That(Same(file.Read("model.diffusion_model.input_blocks.3.1.transformer_blocks.1.attn2.to_k.weight"),
            Read(Component("unet", "diffusion_pytorch_model.safetensors"), "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_k.weight")), Is.True);
        Assert.That(Same(file.Read("model.diffusion_model.output_blocks.1.2.conv.weight"),
            Read(Component("unet", "diffusion_pytorch_model.safetensors"), "up_blocks.0.upsamplers.0.conv.weight")), Is.True);
        Assert.That(Same(file.Read("conditioner.embedders.0.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight"),
            Read(Component("text_encoder", "model.safetensors"), "text_model.encoder.layers.0.self_attn.q_proj.weight")), Is.True);
        var qkv = cat([Read(te2, "text_model.encoder.layers.1.self_attn.q_proj.weight"), Read(te2, "text_model.encoder.layers.1.self_attn.k_proj.weight"),
            Read(te2, "text_model.encoder.layers.1.self_attn.v_proj.weight")]);
        Assert.That(Same(file.Read("conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight"), qkv), Is.True, "q, k, v stacked in that order");
        Assert.That(file.Entry("conditioner.embedders.1.model.text_projection").Shape, Is.EqualTo(new long[] { 24, 20 }), "OpenCLIP's [hidden, projection]");
        Assert.That(Same(file.Read("conditioner.embedders.1.model.text_projection"), Read(te2, "text_projection.weight").t().contiguous()), Is.True);
        Assert.That(Same(file.Read("conditioner.embedders.1.model.ln_final.weight"), Read(te2, "text_model.final_layer_norm.weight")), Is.True);
        Assert.That(file.Contains("conditioner.embedders.1.model.positional_embedding") && file.Contains("conditioner.embedders.1.model.token_embedding.weight")
            && file.Contains("conditioner.embedders.1.model.transformer.resblocks.3.mlp.c_proj.bias"), Is.True);
        Assert.That(file.Contains("first_stage_model.decoder.mid.attn_1.q.weight") && file.Entry("first_stage_model.decoder.mid.attn_1.q.weight").Shape.Length == 4, Is.True,
            "the VAE's attention as 1×1 convolutions");
    }

    [Test]
    public void ExportThenImport_Should_GiveEveryComponentBackBitForBit_AndAnSdxlFolderThePipelineLoads()
    {
        // Given tiny-sdxl exported as one float32 file
        using var temp = new TempFolder();
        string path = temp.File("sdxl.safetensors");
        SingleFileExporter.Write(TinySdxlComponents(), path, ScalarType.Float32);

        // When it is imported with tiny-sdxl as the config folder
        string output = temp.File("imported");
        var import = SingleFileImporter.Import(path, output, TinySdxl.Folder);

        // Then it is recognised as SDXL, nothing was left unread, and every tensor of the four components is the original's
        Assert.That(import.Family, Is.EqualTo(SingleFileFamily.StableDiffusionXL));
        Assert.That(import.Ignored, Is.Empty);
        foreach (var (component, file) in new[] { ("unet", "diffusion_pytorch_model.safetensors"), ("vae", "diffusion_pytorch_model.safetensors"),
                     ("text_encoder", "model.safetensors"), ("text_encoder_2", "model.safetensors") })
            AssertSameTensors(Path.Combine(output, component, file), Component(component, file), component);

        // And the folder is an SDXL diffusers folder the pipeline loads strictly, with both tokenizers and the SDXL scheduler
        using var pipeline = StableDiffusionXLPipeline.FromFolder(DiffusersFolder.Open(output), CPU);
        Assert.That(pipeline.ForceZerosForEmptyPrompt, Is.True);
        Assert.That(pipeline.SchedulerConfig.ClassName, Is.EqualTo("EulerDiscreteScheduler"));
        Assert.That(File.ReadAllBytes(Path.Combine(output, "tokenizer_2", "special_tokens_map.json")),
            Is.EqualTo(File.ReadAllBytes(Component("tokenizer_2", "special_tokens_map.json"))));
    }

    [Test]
    public void Import_Should_ReadTheProjectionUntransposed_When_TheFileHoldsItAsDiffusersScriptWritesIt()
    {
        // Given the file diffusers' convert_diffusers_to_original_sdxl.py would write: text_projection.weight as the Linear weight
        using var temp = new TempFolder();
        string path = temp.File("sdxl.safetensors"), scripted = temp.File("scripted.safetensors");
        SingleFileExporter.Write(TinySdxlComponents(), path, ScalarType.Float32);
        using (var file = SafeTensorsFile.Open(path))
        {
            var tensors = file.Entries.ToDictionary(e => e.Name, e => file.Read(e.Name));
            var projection = tensors["conditioner.embedders.1.model.text_projection"];
            tensors.Remove("conditioner.embedders.1.model.text_projection");
            tensors["conditioner.embedders.1.model.text_projection.weight"] = projection.t().contiguous();
            SafeTensorsWriter.Write(scripted, tensors);
            foreach (var tensor in tensors.Values) tensor.Dispose();
            projection.Dispose();
        }

        // When imported, the second encoder's projection is the original Linear weight
        SingleFileImporter.Import(scripted, temp.File("imported"), TinySdxl.Folder);
        AssertSameTensors(temp.File("imported/text_encoder_2/model.safetensors"), Component("text_encoder_2", "model.safetensors"), "text_encoder_2");
    }

    [Test]
    public void Import_Should_NameWhatIsMissing_When_AnSdxlFileHasNoSdxlConfigFolder()
    {
        using var temp = new TempFolder();
        string path = temp.File("sdxl.safetensors");
        SingleFileExporter.Write(TinySdxlComponents(), path, ScalarType.Float16);

        var error = Assert.Throws<WeightsException>(() => SingleFileImporter.Import(path, temp.File("out"), Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        Assert.That(error!.Message, Does.Contain("SDXL").And.Contain("model.single_file_config").And.Contain("text_encoder_2/config.json").And.Contain("tokenizer_2/vocab.json"));
    }

    [Test]
    public void SingleFileSdxlBase_Should_TrainAndExportASingleFileThatLoadsBackToTheTrainedWeights()
    {
        // Given tiny-sdxl as one file, the model stage's base with tiny-sdxl's configs
        using var harness = new PipelineHarness();
        string checkpoint = Path.Combine(harness.Root, "tiny-sdxl.safetensors");
        SingleFileExporter.Write(TinySdxlComponents(), checkpoint, ScalarType.Float32);
        string[] sets =
        [
            $"download.registry={Path.Combine(RepoPaths.Root, "datasets.json")}", $"model.base={checkpoint}", $"model.single_file_config={TinySdxl.Folder}",
            "download.dataset=shapes-small", "latents.resolution=16", "train.train_batch_size=4", "train.max_train_steps=2", "train.lr_warmup_steps=0",
            "train.learning_rate=1e-3", "train.validation_steps=0", "train.heldout_max_items=4", "train.export_dtype=fp32",
        ];

        // When it trains
        harness.RunChain(["model", "download", "latents", "train"], sets);

        // Then the model stage read it as SDXL, and the exported file loads back to the trained UNet and the base's other parts
        Assert.That(harness.Log, Has.Some.Contains("tiny-sdxl.safetensors is Stable Diffusion XL"));
        string train = harness.Plan("train", sets).ArtifactDirectory!;
        using var temp = new TempFolder();
        var import = SingleFileImporter.Import(Path.Combine(train, SdPipeline.Training.SingleFileDeliverable.FileName), temp.Path, TinySdxl.Folder);
        Assert.That(import.Family, Is.EqualTo(SingleFileFamily.StableDiffusionXL));
        AssertSameTensors(Path.Combine(temp.Path, "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(train, "unet", "diffusion_pytorch_model.safetensors"), "unet");
        AssertSameTensors(Path.Combine(temp.Path, "text_encoder_2", "model.safetensors"), Component("text_encoder_2", "model.safetensors"), "text_encoder_2");
    }

    private static void AssertSameTensors(string actualPath, string expectedPath, string component)
    {
        using var actual = SafeTensorsFile.Open(actualPath);
        using var expected = SafeTensorsFile.Open(expectedPath);
        var expectedNames = expected.Entries.Select(e => e.Name).Where(n => !n.EndsWith("position_ids", StringComparison.Ordinal)).ToList();
        Assert.That(actual.Entries.Select(e => e.Name), Is.EquivalentTo(expectedNames), component);
        foreach (string name in expectedNames)
        {
            Assert.That(actual.Entry(name).DType, Is.EqualTo(expected.Entry(name).DType), $"{component}: {name}");
            Assert.That(actual.Bytes(actual.Entry(name)).ToArray(), Is.EqualTo(expected.Bytes(expected.Entry(name)).ToArray()), $"{component}: {name}");
        }
    }
}
