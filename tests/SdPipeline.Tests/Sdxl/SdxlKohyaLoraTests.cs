using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>
/// Kohya LoRA files for SDXL in the original (SGM) block numbering, as sd-scripts' <c>sdxl_train_network.py</c> writes them:
/// it trains on <c>library/sdxl_original_unet.py</c> (SGM's module tree: <c>input_blocks</c>, <c>middle_block</c>,
/// <c>output_blocks</c>, <c>time_embed</c>, <c>label_emb</c>, <c>out</c>; resnets with <c>in_layers.2</c>, <c>emb_layers.1</c>,
/// <c>out_layers.3</c>, <c>skip_connection</c>; <c>Downsample2D.op</c>, <c>Upsample2D.conv</c>) and names each adapter
/// <c>lora_unet_</c> + its module path with dots as underscores (networks/lora.py).
/// </summary>
public sealed class SdxlKohyaLoraTests
{
    private static readonly Device Meta = new("meta");

    // SDXL base: layers_per_block 2, down levels (DownBlock2D, CrossAttn ×2), up levels (CrossAttn ×2, UpBlock2D),
    // transformer depth 1, 2, 10. The original names, worked out by hand from sdxl_original_unet.py's constructor.
    [TestCase("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", "input_blocks.4.1.transformer_blocks.0.attn1.to_q")]
    [TestCase("down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k", "input_blocks.5.1.transformer_blocks.1.attn2.to_k")]
    [TestCase("down_blocks.2.attentions.1.transformer_blocks.9.ff.net.2", "input_blocks.8.1.transformer_blocks.9.ff.net.2")]
    [TestCase("down_blocks.2.attentions.0.proj_in", "input_blocks.7.1.proj_in")]
    [TestCase("mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0", "middle_block.1.transformer_blocks.0.attn1.to_out.0")]
    [TestCase("mid_block.resnets.1.conv2", "middle_block.2.out_layers.3")]
    [TestCase("up_blocks.0.attentions.2.transformer_blocks.9.ff.net.0.proj", "output_blocks.2.1.transformer_blocks.9.ff.net.0.proj")]
    [TestCase("up_blocks.1.attentions.0.proj_out", "output_blocks.3.1.proj_out")]
    [TestCase("up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv")]
    [TestCase("up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv")]
    [TestCase("up_blocks.2.resnets.2.time_emb_proj", "output_blocks.8.0.emb_layers.1")]
    [TestCase("up_blocks.2.resnets.0.conv_shortcut", "output_blocks.6.0.skip_connection")]
    [TestCase("down_blocks.0.resnets.1.conv1", "input_blocks.2.0.in_layers.2")]
    [TestCase("down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op")]
    [TestCase("down_blocks.1.downsamplers.0.conv", "input_blocks.6.0.op")]
    [TestCase("conv_in", "input_blocks.0.0")]
    [TestCase("time_embedding.linear_2", "time_embed.2")]
    [TestCase("add_embedding.linear_1", "label_emb.0.0")]
    [TestCase("conv_out", "out.2")]
    public void OriginalNumbering_Should_NameSdxlBaseLayersAsKohyasSdxlTrainerDoes(string diffusers, string original)
    {
        // Given SDXL base's UNet (full size, on the meta device) and its layers as a LoRA file may name them
        var paths = SdxlBaseUnetPaths();

        // Then the layer has the original name, and the kohya name read from a file finds it
        var names = OriginalUnetNumbering.Of(paths);
        Assert.That(names[diffusers], Is.EqualTo(original));
        Assert.That(LoraFile.KohyaName(LoraNetwork.Unet, names[diffusers]), Is.EqualTo("lora_unet_" + original.Replace('.', '_')));
    }

    [Test]
    public void OriginalNumbering_Should_GiveEverySdxlBaseLayerItsOwnName()
    {
        var names = OriginalUnetNumbering.Of(SdxlBaseUnetPaths());
        var kohya = names.Values.Select(n => LoraFile.KohyaName(LoraNetwork.Unet, n)).ToList();
        Assert.That(kohya.Distinct().Count(), Is.EqualTo(names.Count), "no two layers share a kohya name");
        Assert.That(kohya.Intersect(names.Keys.Select(p => LoraFile.KohyaName(LoraNetwork.Unet, p))), Is.Empty, "no original name is another layer's diffusers-numbered name");
    }

    [Test]
    public void KohyaFileInOriginalNumbering_Should_LoadAsTheDiffusersNamedOne_AndGiveTheSameUnetOutput()
    {
        // Given tiny-sdxl with an adapter on every linear and convolution layer of the UNet and both text encoders (random
        // lora_up, so each one changes the output), written in kohya's layout with diffusers' block numbering
        using var temp = new TempFolder();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        using var textEncoder = ClipTextModel.FromPretrained(TinySdxl.Open());
        using var textEncoder2 = ClipTextModelWithProjection.FromPretrained(TinySdxl.Open());
        unet.eval();
        var layers = LoraNetwork.Layers(unet, textEncoder, textEncoder2);
        var adapters = RandomAdapters(layers);
        string diffusersNumbered = temp.File("diffusers-numbered.safetensors"), originalNumbered = temp.File("original-numbered.safetensors");
        LoraFile.Write(diffusersNumbered, adapters, LoraLayout.Kohya, sdxl: true);

        // And the same file with every UNet name in the original numbering (the inverse of the reader's map), as sd-scripts writes it
        var original = OriginalUnetNumbering.Of([.. layers.Keys.Where(l => l.Component == LoraNetwork.Unet).Select(l => l.Path)]);
        var rename = original.ToDictionary(p => LoraFile.KohyaName(LoraNetwork.Unet, p.Key), p => LoraFile.KohyaName(LoraNetwork.Unet, p.Value));
        Rewrite(diffusersNumbered, originalNumbered, name =>
        {
            string module = name[..name.IndexOf('.', StringComparison.Ordinal)];
            return rename.TryGetValue(module, out string? renamed) ? renamed + name[module.Length..] : name;
        });
        var keys = Names(originalNumbered);
        // tiny-sdxl: layers_per_block 1, so its second down level's attention is input_blocks.3.1 and the first up level's upsampler output_blocks.1.2
        Assert.That(keys, Has.Member("lora_unet_input_blocks_3_1_transformer_blocks_1_attn2_to_k.lora_down.weight")
            .And.Member("lora_unet_output_blocks_1_2_conv.lora_up.weight")
            .And.Member("lora_unet_input_blocks_2_0_op.alpha")
            .And.Member("lora_unet_label_emb_0_2.lora_down.weight")
            .And.Member("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"));
        string[] diffusersBlocks = ["lora_unet_down_blocks_", "lora_unet_mid_block_", "lora_unet_up_blocks_", "lora_unet_conv_in", "lora_unet_add_embedding_"];
        Assert.That(keys.Where(k => diffusersBlocks.Any(b => k.StartsWith(b, StringComparison.Ordinal))), Is.Empty, "no diffusers-numbered UNet name is left");

        // When both files are read against the model
        var (fromDiffusers, diffusersModules) = LoraFile.Read(diffusersNumbered, layers.Keys);
        var (fromOriginal, originalModules) = LoraFile.Read(originalNumbered, layers.Keys);

        // Then they are the same adapters, value for value
        Assert.That((fromDiffusers, fromOriginal), Is.EqualTo((LoraLayout.Kohya, LoraLayout.Kohya)));
        Assert.That(originalModules.Select(m => (m.Component, m.Path)), Is.EquivalentTo(adapters.Select(m => (m.Component, m.Path))));
        var byLayer = diffusersModules.ToDictionary(m => (m.Component, m.Path));
        foreach (var module in originalModules)
        {
            var other = byLayer[(module.Component, module.Path)];
            Assert.That(Same(module.Down, other.Down) && Same(module.Up, other.Up) && module.Alpha == other.Alpha, Is.True, $"{module.Component}.{module.Path}");
        }

        // And the UNet adapted by either computes the same output, bit for bit, and not the base model's
        using var noGrad = no_grad();
        using var generator = new Generator(11);
        using var latents = randn([1, 4, 8, 8], generator: generator);
        using var timesteps = tensor(new long[] { 500 });
        using var text = randn([1, 77, 56], generator: generator);
        using var textEmbeds = randn([1, 20], generator: generator);
        using var timeIds = tensor(new float[] { 16, 16, 0, 0, 16, 16 }).unsqueeze(0);
        Tensor Predict() => unet.forward(latents, timesteps, text, new AddedConditions(textEmbeds, timeIds));
        using var plain = Predict();
        Tensor OutputOf(IReadOnlyList<LoraModuleWeights> modules)
        {
            using var network = LoraNetwork.Apply(modules, unet, textEncoder, 1.0, textEncoder2);
            return Predict();
        }
        using var viaDiffusersNames = OutputOf(diffusersModules);
        using var viaOriginalNames = OutputOf(originalModules);
        Assert.That(Same(viaOriginalNames, viaDiffusersNames), Is.True);
        Assert.That((viaOriginalNames - plain).abs().max().item<float>(), Is.GreaterThan(1e-3f), "the adapters change the output");

        // And sdpipe lora convert turns the original-numbered file into the same diffusers file as the diffusers-numbered one
        LoraConverter.Convert(diffusersNumbered, temp.File("a.safetensors"), LoraLayout.Diffusers, TinySdxl.Open());
        LoraConverter.Convert(originalNumbered, temp.File("b.safetensors"), LoraLayout.Diffusers, TinySdxl.Open());
        Assert.That(File.ReadAllBytes(temp.File("b.safetensors")), Is.EqualTo(File.ReadAllBytes(temp.File("a.safetensors"))));

        // And converting it to kohya's layout for this SDXL model names the UNet's layers in the original numbering, as sd-scripts does
        LoraConverter.Convert(temp.File("a.safetensors"), temp.File("c.safetensors"), LoraLayout.Kohya, TinySdxl.Open());
        Assert.That(Names(temp.File("c.safetensors")), Is.EquivalentTo(Names(originalNumbered)));
        foreach (var module in adapters.Concat(diffusersModules).Concat(originalModules))
        {
            module.Down.Dispose();
            module.Up.Dispose();
        }
    }

    [Test]
    public void KohyaFile_Should_NameTheKey_When_AnOriginalBlockIsNotInTheModel()
    {
        // input_blocks.9 does not exist in tiny-sdxl (layers_per_block 1 over two levels: its input blocks are 0–3)
        using var temp = new TempFolder();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        string path = temp.File("lora.safetensors");
        using (var down = zeros(2, 32))
        using (var up = zeros(32, 2))
            SafeTensorsWriter.Write(path, new Dictionary<string, Tensor>
            {
                ["lora_unet_input_blocks_9_1_proj_in.lora_down.weight"] = down,
                ["lora_unet_input_blocks_9_1_proj_in.lora_up.weight"] = up,
            });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(unet, null).Keys));
        Assert.That(error!.Message, Does.Contain("lora_unet_input_blocks_9_1_proj_in").And.Contain(path));
    }

    [Test]
    public void KohyaFile_Should_BeRefused_When_ItAdaptsALayerUnderBothNumberings()
    {
        using var temp = new TempFolder();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        string path = temp.File("lora.safetensors");
        using var down = zeros(2, 32);
        using var up = zeros(32, 2);
        SafeTensorsWriter.Write(path, new Dictionary<string, Tensor>
        {
            ["lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight"] = down,
            ["lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight"] = up,
            ["lora_unet_input_blocks_3_1_proj_in.lora_down.weight"] = down,
            ["lora_unet_input_blocks_3_1_proj_in.lora_up.weight"] = up,
        });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(unet, null).Keys));
        Assert.That(error!.Message, Does.Contain("lora_unet_input_blocks_3_1_proj_in").And.Contain("lora_unet_down_blocks_1_attentions_0_proj_in")
            .And.Contain("unet.down_blocks.1.attentions.0.proj_in"));
    }

    [Test]
    public void ConvertToKohya_Should_WriteTheModelsFamily_AndRefuseWithoutTheModel()
    {
        // Given an SDXL LoRA on the UNet's attention alone in diffusers' layout (what train_text_to_image_lora_sdxl.py and
        // configs/sdxl.json make): nothing in it says SDXL, since the text encoders carry no adapters
        using var temp = new TempFolder();
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        using var network = LoraNetwork.Create(unet, null, new LoraSettings(4, 4, 0, Attention: true, Resnets: false, TextEncoder: false), seed: 1);
        string diffusers = temp.File("pytorch_lora_weights.safetensors"), kohya = temp.File("kohya.safetensors");
        LoraFile.Write(diffusers, network.ToWeights(), LoraLayout.Diffusers, sdxl: true);

        // When it is converted to kohya's layout without the model, and with it
        var refused = CliRunner.Sdpipe(temp.Path, null, "lora", "convert", diffusers, kohya, "--to", "kohya");
        bool writtenWithoutModel = File.Exists(kohya);
        LoraConverter.Convert(diffusers, kohya, LoraLayout.Kohya, TinySdxl.Open());

        // Then without it the command exits 2 naming --model and writes nothing (it wrote an SD 1.x-labelled file in diffusers'
        // numbering, which AUTOMATIC1111 hides beside an SDXL checkpoint); with it the file is kohya's SDXL one
        Assert.That(refused.ExitCode, Is.EqualTo(2), refused.All);
        Assert.That(refused.Error, Does.Contain("--model").And.Contain("SDXL"));
        Assert.That(writtenWithoutModel, Is.False);
        using var file = SafeTensorsFile.Open(kohya);
        Assert.That(file.Metadata["ss_base_model_version"], Is.EqualTo("sdxl_base_v1-0"));
        Assert.That(file.Entries.Select(e => e.Name), Has.Member("lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.lora_down.weight"));
        Assert.That(file.Entries.Select(e => e.Name).Where(n => n.StartsWith("lora_unet_down_blocks_", StringComparison.Ordinal)), Is.Empty);
    }

    private static List<string> SdxlBaseUnetPaths()
    {
        using var temp = new TempFolder();
        string configs = SdxlBaseConfigs.Write(temp);
        using var unet = new UNet2DConditionModel(UNet2DConditionConfig.Load(Path.Combine(configs, "unet", "config.json")), Meta);
        return [.. LoraNetwork.Layers(unet, null).Keys.Select(l => l.Path)];
    }

    // Rank-2 adapters on every layer, alpha 1, with lora_up drawn too so that each adapter changes its layer.
    private static List<LoraModuleWeights> RandomAdapters(IReadOnlyDictionary<(string Component, string Path), nn.Module> layers)
    {
        using var generator = new Generator(5);
        var adapters = new List<LoraModuleWeights>();
        foreach (var ((component, path), layer) in layers)
        {
            var shape = layer.named_parameters().First(p => p.name == "weight").parameter.shape;
            long[] down = shape.Length == 2 ? [2, shape[1]] : [2, shape[1], shape[2], shape[3]];
            long[] up = shape.Length == 2 ? [shape[0], 2] : [shape[0], 2, 1, 1];
            adapters.Add(new LoraModuleWeights(component, path, randn(down, generator: generator) * 0.1, randn(up, generator: generator) * 0.1, 1.0));
        }
        return adapters;
    }

    private static void Rewrite(string from, string to, Func<string, string> rename)
    {
        using var file = SafeTensorsFile.Open(from);
        var tensors = file.Entries.ToDictionary(e => rename(e.Name), e => file.Read(e.Name));
        SafeTensorsWriter.Write(to, tensors, file.Metadata);
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    private static List<string> Names(string path)
    {
        using var file = SafeTensorsFile.Open(path);
        return [.. file.Entries.Select(e => e.Name)];
    }

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
