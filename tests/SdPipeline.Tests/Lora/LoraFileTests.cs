using System.Text.RegularExpressions;
using Newtonsoft.Json.Linq;
using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Tests.Support;
using SdPipeline.Tests.Training;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Lora;

/// <summary>
/// Export and import in the diffusers/PEFT and kohya layouts. The expected key names come from the code that writes and
/// reads them: diffusers' <c>save_lora_weights</c> (PEFT state dict packed under <c>unet.</c>/<c>text_encoder.</c>),
/// <c>convert_unet_state_dict_to_peft</c> and <c>_convert_non_diffusers_lora_to_diffusers</c> / <c>_convert_unet_lora_key</c>
/// (src/diffusers/loaders/lora_conversion_utils.py, src/diffusers/utils/state_dict_utils.py), and kohya's sd-scripts
/// networks/lora.py (<c>lora_name = prefix + "." + name + "." + child_name</c>, "." → "_", prefixes lora_unet / lora_te).
/// </summary>
public sealed class LoraFileTests
{
    private static readonly LoraSettings Settings = new(Rank: 4, Alpha: 2, Dropout: 0, Attention: true, Resnets: true, TextEncoder: true);

    private static ClipTextModel TextEncoder() => ClipTextModel.FromPretrained(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));

    [TestCase(LoraLayout.Diffusers)]
    [TestCase(LoraLayout.Kohya)]
    public void ExportThenImport_Should_RoundTripTheAdapters(LoraLayout layout)
    {
        // Given trained-looking adapters (alpha 2 ≠ rank 4, so alpha must travel with the file)
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        using var textEncoder = TextEncoder();
        step.Unet.eval();
        using var network = LoraNetwork.Create(step.Unet, textEncoder, Settings, seed: 5);
        LoraNetworkTests.Randomise(network, 6);
        using var noGrad = torch.no_grad();
        using var expected = step.Predict();
        string path = temp.File("lora.safetensors");

        // When written, removed, and read back onto the same model
        LoraFile.Write(path, network.ToWeights(), layout);
        var original = network.Modules.ToDictionary(m => (m.Component, m.Path), m => (Down: m.Adapter.Down.clone(), Up: m.Adapter.Up.clone()));
        network.Detach();
        var (detected, modules) = LoraFile.Read(path, LoraNetwork.Layers(step.Unet, textEncoder).Keys);
        using var applied = LoraNetwork.Apply(modules, step.Unet, textEncoder, strength: 1.0);
        using var actual = step.Predict();

        // Then the layout is recognised, every module comes back bit for bit with its alpha, and the model computes the same
        Assert.That(detected, Is.EqualTo(layout));
        Assert.That(modules.Select(m => (m.Component, m.Path)), Is.EquivalentTo(original.Keys));
        foreach (var module in modules)
        {
            Assert.That(Same(module.Down, original[(module.Component, module.Path)].Down), Is.True, module.Path);
            Assert.That(Same(module.Up, original[(module.Component, module.Path)].Up), Is.True, module.Path);
            Assert.That(module.Alpha, Is.EqualTo(2.0), module.Path);
        }
        Assert.That(Same(actual, expected), Is.True);
    }

    [Test]
    public void DiffusersLayout_Should_UsePeftKeys_AndCarryAlphaInTheAdapterMetadata()
    {
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        using var textEncoder = TextEncoder();
        using var network = LoraNetwork.Create(step.Unet, textEncoder, Settings, seed: 0);
        string path = temp.File(LoraFile.DiffusersFileName);

        LoraFile.Write(path, network.ToWeights(), LoraLayout.Diffusers);

        using var file = SafeTensorsFile.Open(path);
        var keys = file.Entries.Select(e => e.Name).ToList();
        var unet = new Regex(@"^unet\.(down_blocks\.\d+|mid_block|up_blocks\.\d+)\.(attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.(to_q|to_k|to_v|to_out\.0)|resnets\.\d+\.(conv1|conv2|conv_shortcut))\.lora_[AB]\.weight$");
        var text = new Regex(@"^text_encoder\.text_model\.encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)\.lora_[AB]\.weight$");
        Assert.That(keys.Where(k => !unet.IsMatch(k) && !text.IsMatch(k)), Is.Empty);
        Assert.That(keys, Does.Contain("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight")
            .And.Contain("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight"));
        var metadata = JObject.Parse(file.Metadata[LoraFile.AdapterMetadataKey]);
        Assert.That(metadata["unet.r"]!.Value<int>(), Is.EqualTo(4));
        Assert.That(metadata["unet.lora_alpha"]!.Value<double>(), Is.EqualTo(2.0));
        Assert.That(metadata["text_encoder.lora_alpha"]!.Value<double>(), Is.EqualTo(2.0));
        Assert.That(metadata["unet.target_modules"]!.Values<string>(), Is.EquivalentTo(new[] { "conv1", "conv2", "conv_shortcut", "to_k", "to_out.0", "to_q", "to_v" }));
        // diffusers ≥ 0.34 builds the LoraConfig from these and reads rank_pattern first: present (empty) for each component
        foreach (string component in new[] { "unet", "text_encoder" })
            foreach (string pattern in new[] { "rank_pattern", "alpha_pattern" })
                Assert.That(metadata[$"{component}.{pattern}"], Is.TypeOf<JObject>().And.Empty, $"{component}.{pattern}");
        Assert.That(file.Entry("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight").Shape[0], Is.EqualTo(4), "lora_A is [r, in]");
    }

    [Test]
    public void KohyaLayout_Should_UseSdScriptsNames_ThatDiffusersConvertsBackToTheSameLayers()
    {
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        using var textEncoder = TextEncoder();
        using var network = LoraNetwork.Create(step.Unet, textEncoder, Settings, seed: 0);
        string path = temp.File(LoraFile.KohyaFileName);

        LoraFile.Write(path, network.ToWeights(), LoraLayout.Kohya);

        using var file = SafeTensorsFile.Open(path);
        var keys = file.Entries.Select(e => e.Name).ToList();
        Assert.That(keys, Does.Contain("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight")
            .And.Contain("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_up.weight")
            .And.Contain("lora_unet_down_blocks_0_resnets_0_conv1.alpha")
            .And.Contain("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"));
        Assert.That(keys.All(k => Regex.IsMatch(k, @"^lora_(unet|te)_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$")), Is.True);
        Assert.That(file.Metadata.Keys, Has.None.EqualTo("ss_v2").And.None.EqualTo("ss_base_model_version"), "SD 1.x: what AUTOMATIC1111 assumes of kohya metadata without them");
        string sd2 = temp.File("sd2.safetensors");
        LoraFile.Write(sd2, network.ToWeights(), LoraLayout.Kohya, sd2: true);
        using (var sd2File = SafeTensorsFile.Open(sd2))
            Assert.That(sd2File.Metadata["ss_v2"], Is.EqualTo("True"), "AUTOMATIC1111's Lora tab lists it beside an SD 2.x checkpoint");
        using (var alpha = file.Read("lora_unet_down_blocks_0_resnets_0_conv1.alpha"))
        {
            Assert.That(alpha.shape, Is.Empty, "alpha is a scalar tensor, as sd-scripts' register_buffer(\"alpha\", torch.tensor(alpha))");
            Assert.That(alpha.item<float>(), Is.EqualTo(2f));
        }
        Assert.That(file.Entry("lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight").Shape[2..], Is.EqualTo(new long[] { 1, 1 }), "lora_up of a conv is 1×1");

        // diffusers' reading of each kohya name lands on the layer our diffusers-layout key names
        foreach (var module in network.Modules.Where(m => m.Component == "unet"))
        {
            string kohya = LoraFile.KohyaName(module.Component, module.Path) + ".lora_down.weight";
            Assert.That(DiffusersUnetKey(kohya), Is.EqualTo($"{module.Path}.lora_A.weight"), kohya);
        }
    }

    /// <summary>Writes a safetensors file of zero tensors of the given shapes: a LoRA file as a model site may serve it.</summary>
    private static void WriteZeros(string path, IReadOnlyDictionary<string, long[]> shapes, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var tensors = shapes.ToDictionary(s => s.Key, s => torch.zeros(s.Value));
        try
        {
            SafeTensorsWriter.Write(path, tensors, metadata);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    [Test]
    public void DiffusersLayout_Should_RefuseDoraMagnitudes_RatherThanDropThem()
    {
        // Given a PEFT file from diffusers' --use_dora training: lora_A/lora_B plus a magnitude vector per layer
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        string layer = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
        string path = temp.File("dora.safetensors");
        using (var down = torch.zeros(4, 64))
        using (var up = torch.zeros(64, 4))
        using (var magnitude = torch.ones(64))
            SafeTensorsWriter.Write(path, new Dictionary<string, Tensor>
            {
                [$"{layer}.lora_A.weight"] = down,
                [$"{layer}.lora_B.weight"] = up,
                [$"{layer}.lora_magnitude_vector"] = magnitude,
            });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys));

        Assert.That(error!.Message, Does.Contain("dora.safetensors").And.Contain("lora_magnitude_vector").And.Contain("does not apply"));
    }

    [Test]
    public void DiffusersLayout_Should_RefuseARankTheHeaderContradicts()
    {
        // Given rank-4 tensors under a header whose LoraConfig says r = 8: diffusers builds the adapters from the header
        // (_create_lora_config: LoraConfig(**metadata)) and PEFT's load_state_dict then fails on the shapes
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        string layer = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
        string path = temp.File("rank.safetensors");
        var config = new JObject { ["unet.r"] = 8, ["unet.lora_alpha"] = 8, ["unet.rank_pattern"] = new JObject(), ["unet.alpha_pattern"] = new JObject() };
        WriteZeros(path, new Dictionary<string, long[]> { [$"{layer}.lora_A.weight"] = [4, 64], [$"{layer}.lora_B.weight"] = [64, 4] },
                new Dictionary<string, string> { [LoraFile.AdapterMetadataKey] = config.ToString() });

        // Then it is refused, rather than applied at alpha / 4 = 2 where the header says alpha / r = 1
        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys));
        Assert.That(error!.Message, Does.Contain("rank.safetensors").And.Contain("unet.r").And.Contain(layer));

        // And a header that agrees (or a rank_pattern entry for the layer) is read
        config["unet.rank_pattern"] = new JObject { [layer["unet.".Length..]] = 4 };
        WriteZeros(path, new Dictionary<string, long[]> { [$"{layer}.lora_A.weight"] = [4, 64], [$"{layer}.lora_B.weight"] = [64, 4] },
                new Dictionary<string, string> { [LoraFile.AdapterMetadataKey] = config.ToString() });
        var (_, modules) = LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys);
        Assert.That(modules.Single().Rank, Is.EqualTo(4));
        foreach (var module in modules)
        {
            module.Down.Dispose();
            module.Up.Dispose();
        }
    }

    [Test]
    public void Read_Should_NameTheModulesThatFitNoLayer()
    {
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        string path = temp.File("sdxl.safetensors");
        WriteZeros(path, new Dictionary<string, long[]>
            {
                ["lora_unet_input_blocks_40_1_proj_in.lora_down.weight"] = [4, 8],
                ["lora_unet_input_blocks_40_1_proj_in.lora_up.weight"] = [8, 4],
            });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys));

        Assert.That(error!.Message, Does.Contain("lora_unet_input_blocks_40_1_proj_in").And.Contain("another architecture"));
    }

    // Files as a model site may serve them: each breaks what makes two tensors an adapter, and each ended in an index error,
    // a division by zero (rank 0), or an ArgumentException when sampling attached it; `lora convert` wrote them out.
    [TestCase(new long[] { 4, 64 }, new long[] { 64, 8 }, TestName = "Read_Should_RefuseByKey_When_DownAndUpHaveDifferentRanks")]
    [TestCase(new long[] { 4 }, new long[] { 64, 4 }, TestName = "Read_Should_RefuseByKey_When_DownIsAVector")]
    [TestCase(new long[] { 0, 64 }, new long[] { 64, 0 }, TestName = "Read_Should_RefuseByKey_When_TheRankIsZero")]
    [TestCase(new long[] { 4, 64, 1, 1 }, new long[] { 64, 4, 3, 3 }, TestName = "Read_Should_RefuseByKey_When_AConvolutionUpIsNot1x1")]
    public void Read_Should_RefuseByKey_When_TheShapesAreNoAdapters(long[] downShape, long[] upShape)
    {
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        string layer = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
        string path = temp.File("stranger.safetensors");
        WriteZeros(path, new Dictionary<string, long[]> { [$"{layer}.lora_A.weight"] = downShape, [$"{layer}.lora_B.weight"] = upShape });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys));

        Assert.That(error!.Message, Does.Contain("stranger.safetensors").And.Contain($"'{layer}.lora_A.weight'").And.Contain("not a LoRA's"));
    }

    [TestCase("{\"unet.r\": 4,", "is not a JSON object")]
    [TestCase("[4]", "is not a JSON object")]
    [TestCase("{\"unet.lora_alpha\": \"eight\"}", "'unet.lora_alpha' the value \"eight\", not a number")]
    [TestCase("{\"unet.r\": 4, \"unet.rank_pattern\": {\"down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q\": [4]}}", "unet.rank_pattern")]
    public void Read_Should_NameTheMetadataEntry_When_TheAdapterConfigIsNotJsonOfNumbers(string config, string expected)
    {
        // diffusers json.loads this entry and builds a LoraConfig from it; here a bad one was a JsonReaderException or
        // FormatException with a stack trace
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        string layer = "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q";
        string path = temp.File("stranger.safetensors");
        WriteZeros(path, new Dictionary<string, long[]> { [$"{layer}.lora_A.weight"] = [4, 64], [$"{layer}.lora_B.weight"] = [64, 4] },
                new Dictionary<string, string> { [LoraFile.AdapterMetadataKey] = config });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys));

        Assert.That(error!.Message, Does.Contain("stranger.safetensors").And.Contain(LoraFile.AdapterMetadataKey).And.Contain(expected));
    }

    [Test]
    public void Read_Should_RefuseByKey_When_AKohyaAlphaIsNotOneNumber()
    {
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        string name = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q";
        string path = temp.File("stranger.safetensors");
        WriteZeros(path, new Dictionary<string, long[]>
            {
                [$"{name}.lora_down.weight"] = [4, 64],
                [$"{name}.lora_up.weight"] = [64, 4],
                [$"{name}.alpha"] = [0],
            });

        var error = Assert.Throws<WeightsException>(() => LoraFile.Read(path, LoraNetwork.Layers(step.Unet, null).Keys));

        Assert.That(error!.Message, Does.Contain("stranger.safetensors").And.Contain($"'{name}.alpha' has shape [0]"));
    }

    [Test]
    public void Convert_Should_GoToKohyaAndBack_ResolvingKohyaNamesAgainstTheModelFolder()
    {
        using var temp = new TempFolder();
        using var step = TinyUnetStep.Load();
        using var textEncoder = TextEncoder();
        using var network = LoraNetwork.Create(step.Unet, textEncoder, Settings, seed: 0);
        LoraNetworkTests.Randomise(network, 1);
        string diffusers = temp.File("a.safetensors"), kohya = temp.File("b.safetensors"), back = temp.File("c.safetensors");
        LoraFile.Write(diffusers, network.ToWeights(), LoraLayout.Diffusers);
        var model = DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd"));

        var there = LoraConverter.Convert(diffusers, kohya, LoraLayout.Kohya, model);
        var error = Assert.Throws<WeightsException>(() => LoraConverter.Convert(kohya, back, LoraLayout.Diffusers, model: null));
        var again = LoraConverter.Convert(kohya, back, LoraLayout.Diffusers, model);

        Assert.That((there.From, again.From), Is.EqualTo((LoraLayout.Diffusers, LoraLayout.Kohya)));
        Assert.That(again.Modules, Is.EqualTo(network.Modules.Count));
        Assert.That(error!.Message, Does.Contain("--model"));
        using var original = SafeTensorsFile.Open(diffusers);
        using var roundTripped = SafeTensorsFile.Open(back);
        Assert.That(roundTripped.Entries.Select(e => e.Name), Is.EquivalentTo(original.Entries.Select(e => e.Name)));
        foreach (var entry in original.Entries)
            Assert.That(roundTripped.Bytes(roundTripped.Entry(entry.Name)).ToArray(), Is.EqualTo(original.Bytes(entry).ToArray()), entry.Name);
        Assert.That(roundTripped.Metadata[LoraFile.AdapterMetadataKey], Is.EqualTo(original.Metadata[LoraFile.AdapterMetadataKey]));
    }

    [Test]
    public void ConvertToKohya_Should_MarkAnSd2Lora_AsTheTrainStageDoes()
    {
        // Given an SD 2.x model folder (tiny-sd's configs with OpenCLIP's exact GELU, how the exporter tells SD 2.x) and a
        // diffusers-layout LoRA for it
        using var temp = new TempFolder();
        string model = temp.File("sd2");
        foreach (string component in new[] { "unet", "text_encoder" })
        {
            Directory.CreateDirectory(Path.Combine(model, component));
            File.Copy(Path.Combine(RepoPaths.Fixtures, "tiny-sd", component, "config.json"), Path.Combine(model, component, "config.json"));
        }
        File.Copy(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "model_index.json"), Path.Combine(model, "model_index.json"));
        string textConfig = Path.Combine(model, "text_encoder", "config.json");
        var config = JObject.Parse(File.ReadAllText(textConfig));
        config["hidden_act"] = "gelu";
        File.WriteAllText(textConfig, config.ToString());
        using var step = TinyUnetStep.Load();
        using var network = LoraNetwork.Create(step.Unet, null, Settings with { TextEncoder = false }, seed: 0);
        string diffusers = temp.File("a.safetensors"), kohya = temp.File("b.safetensors");
        LoraFile.Write(diffusers, network.ToWeights(), LoraLayout.Diffusers);

        // When it is converted to kohya's layout against that folder
        LoraConverter.Convert(diffusers, kohya, LoraLayout.Kohya, DiffusersFolder.Open(model));

        // Then the file says SD 2.x (AUTOMATIC1111 lists a kohya LoRA without ss_v2 for SD 1.x only), as the train stage's does
        using var file = SafeTensorsFile.Open(kohya);
        Assert.That(file.Metadata.TryGetValue("ss_v2", out string? v2) ? v2 : null, Is.EqualTo("True"));
    }

    /// <summary>
    /// diffusers' path from a kohya UNet key to its PEFT key, for SD 1.x names: <c>_convert_unet_lora_key</c> ("_" → ".",
    /// then re-joining the names that contain underscores; "attnN" → "attnN.processor"; "to_q_lora"/"to_out_lora" forms),
    /// then <c>convert_unet_state_dict_to_peft</c> (<c>UNET_TO_DIFFUSERS</c>: ".to_q_lora.down" → ".to_q.lora_A",
    /// ".lora.down" → ".lora_A"; <c>KEYS_TO_ALWAYS_REPLACE</c>: ".processor." → ".").
    /// </summary>
    private static string DiffusersUnetKey(string kohyaKey)
    {
        string name = kohyaKey.Replace("lora_unet_", "", StringComparison.Ordinal).Replace('_', '.');
        foreach (var (from, to) in new[]
        {
            ("down.blocks", "down_blocks"), ("mid.block", "mid_block"), ("up.blocks", "up_blocks"), ("transformer.blocks", "transformer_blocks"),
            ("to.q.lora", "to_q_lora"), ("to.k.lora", "to_k_lora"), ("to.v.lora", "to_v_lora"), ("to.out.0.lora", "to_out_lora"),
            ("proj.in", "proj_in"), ("proj.out", "proj_out"), ("conv.shortcut", "conv_shortcut"),
        })
            name = name.Replace(from, to, StringComparison.Ordinal);
        if (name.Contains("transformer_blocks", StringComparison.Ordinal))
            name = name.Replace("attn1", "attn1.processor", StringComparison.Ordinal).Replace("attn2", "attn2.processor", StringComparison.Ordinal);
        foreach (var (from, to) in new[]
        {
            (".to_out_lora.down", ".to_out.0.lora_A"), (".to_q_lora.down", ".to_q.lora_A"), (".to_k_lora.down", ".to_k.lora_A"),
            (".to_v_lora.down", ".to_v.lora_A"), (".lora.down", ".lora_A"),
        })
            if (name.Contains(from, StringComparison.Ordinal))
            {
                name = name.Replace(from, to, StringComparison.Ordinal);
                break;
            }
        return name.Replace(".processor.", ".", StringComparison.Ordinal);
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
