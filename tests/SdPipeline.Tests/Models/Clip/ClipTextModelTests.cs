using Newtonsoft.Json.Linq;
using SdPipeline.Models.Clip;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Models.Clip;

public sealed class ClipTextModelTests
{
    // fixtures README: text encoder outputs atol 1e-4 (the observed float32 spread is ~1e-6).
    private const double Tolerance = 1e-4;

    private static string TinySd => Path.Combine(RepoPaths.Fixtures, "tiny-sd");

    private static string Parity(string name) => Path.Combine(RepoPaths.Fixtures, "parity", name);

    [Test]
    public void Forward_Should_MatchTransformers_When_RunOnTheParityPrompts()
    {
        // Given the tiny text encoder and the reference inputs/outputs
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var model = ClipTextModel.FromPretrained(DiffusersFolder.Open(TinySd));
        using var reference = SafeTensorsFile.Open(Parity("text_encoder.safetensors"));
        var inputIds = reference.Read("input_ids");

        // When the ids are encoded
        var lastHidden = model.forward(inputIds);
        var hiddenStates = model.HiddenStates(inputIds);

        // Then last_hidden_state and every layer's output match
        double lastError = MaxAbsError(lastHidden, reference.Read("last_hidden_state"));
        TestContext.Out.WriteLine($"last_hidden_state max abs error {lastError:E2}");
        Assert.That(lastError, Is.LessThan(Tolerance));
        Assert.That(hiddenStates, Has.Count.EqualTo(6));
        for (int i = 0; i < hiddenStates.Count; i++)
        {
            double error = MaxAbsError(hiddenStates[i], reference.Read($"hidden_states.{i}"));
            TestContext.Out.WriteLine($"hidden_states.{i} max abs error {error:E2}");
            Assert.That(error, Is.LessThan(Tolerance), $"hidden_states.{i}");
        }
    }

    [Test]
    public void Encode_Should_NormalisePenultimateLayer_When_ClipSkipIsOne()
    {
        // Given the reference penultimate hidden state (before the final LayerNorm) and the final LayerNorm's weights
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        using var model = ClipTextModel.FromPretrained(DiffusersFolder.Open(TinySd));
        using var reference = SafeTensorsFile.Open(Parity("text_encoder.safetensors"));
        using var weights = SafeTensorsFile.Open(Path.Combine(TinySd, "text_encoder", "model.safetensors"));
        var expected = nn.functional.layer_norm(reference.Read("hidden_states.4"), [32],
            weights.Read("text_model.final_layer_norm.weight"), weights.Read("text_model.final_layer_norm.bias"), 1e-5);

        // When it is encoded with clip skip 1 (diffusers: hidden_states[-2], then final_layer_norm)
        var skipped = model.Encode(reference.Read("input_ids"), clipSkip: 1);

        // Then it is the penultimate layer through the final LayerNorm, not the last layer
        double error = MaxAbsError(skipped, expected);
        TestContext.Out.WriteLine($"clip skip 1 max abs error {error:E2}");
        Assert.That(error, Is.LessThan(Tolerance));
        Assert.That(MaxAbsError(skipped, reference.Read("last_hidden_state")), Is.GreaterThan(1e-2));
    }

    [Test]
    public void Tokenizer_Should_ProduceTheParityInputIds_When_GivenTheParityPrompts()
    {
        // The parity fixture's ids come from the SD tokenizer: tokenizer and text encoder agree end to end.
        string[] prompts = JObject.Parse(File.ReadAllText(Parity("text_encoder.json")))["prompts"]!.ToObject<string[]>()!;
        using var reference = SafeTensorsFile.Open(Parity("text_encoder.safetensors"));
        using var expected = reference.Read("input_ids");

        using var ids = ClipTokenizer.FromFolder(TinySd).EncodeBatch(prompts);

        Assert.That(ids.data<long>().ToArray(), Is.EqualTo(expected.data<long>().ToArray()));
    }

    [Test]
    public void StateDict_Should_EqualTransformersKeysAndShapes_When_BuiltFromSd15Config()
    {
        // Given SD 1.5's text encoder config and transformers' ordered key list
        var config = ClipTextConfig.Load(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "text_encoder", "config.json"));
        var reference = JObject.Parse(File.ReadAllText(Path.Combine(RepoPaths.Fixtures, "sd15-keys", "text_encoder_keys.json")));
        var expected = ((JObject)reference["keys"]!).Properties().Select(p => (p.Name, Shape: p.Value.ToObject<long[]>()!)).ToList();

        // When the model is built on the meta device (shapes only, nothing allocated)
        using var model = new ClipTextModel(config, torch.device(DeviceType.META));
        var actual = model.state_dict().Select(p => (Name: p.Key, Shape: p.Value.shape)).ToList();

        // Then it has transformers' keys in transformers' order, with the same shapes and parameter count
        Assert.That(actual.Select(k => k.Name), Is.EqualTo(expected.Select(k => k.Name)));
        for (int i = 0; i < expected.Count; i++)
            Assert.That(actual[i].Shape, Is.EqualTo(expected[i].Shape), expected[i].Name);
        Assert.That(model.parameters().Sum(p => p.NumberOfElements), Is.EqualTo(123_060_480L).And.EqualTo(reference.Value<long>("total_parameters")));
        Assert.That(reference["optional_keys"]!.ToObject<JObject>()!.Properties().Select(p => p.Name),
            Is.EquivalentTo(ClipTextModel.LegacyKeys.IgnoredKeys));
    }

    [Test]
    public void FromPretrained_Should_IgnorePositionIds_When_FileWasWrittenByOldTransformers()
    {
        // Given a copy of the tiny text encoder whose file also holds the legacy position_ids buffer
        using var temp = new TempFolder();
        File.Copy(Path.Combine(TinySd, "model_index.json"), temp.File("model_index.json"));
        Directory.CreateDirectory(temp.File("text_encoder"));
        File.Copy(Path.Combine(TinySd, "text_encoder", "config.json"), temp.File("text_encoder/config.json"));
        using (var original = SafeTensorsFile.Open(Path.Combine(TinySd, "text_encoder", "model.safetensors")))
        {
            var tensors = original.ReadAll();
            tensors["text_model.embeddings.position_ids"] = torch.arange(77L).unsqueeze(0);
            SafeTensorsWriter.Write(temp.File("text_encoder/model.safetensors"), tensors);
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }

        // When it is loaded strictly
        using var model = ClipTextModel.FromPretrained(DiffusersFolder.Open(temp.Path));

        // Then the buffer is no weight of the model
        Assert.That(model.state_dict().Keys, Does.Not.Contain("text_model.embeddings.position_ids"));
        Assert.That(model.state_dict(), Has.Count.EqualTo(84));
    }

    [Test]
    public void Encode_Should_Refuse_When_ClipSkipLeavesNoLayer()
    {
        using var model = new ClipTextModel(TinyConfig(), torch.device(DeviceType.META));
        using var ids = torch.zeros(1, 77, ScalarType.Int64);

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.Encode(ids, clipSkip: 2))!;

        Assert.That(error.Message, Does.Contain("between 0 and 1"));
    }

    [Test]
    public void Forward_Should_Refuse_When_InputIsLongerThanThePositions()
    {
        using var model = new ClipTextModel(TinyConfig() with { MaxPositionEmbeddings = 8 });
        using var ids = torch.zeros(1, 9, ScalarType.Int64);

        var error = Assert.Throws<ArgumentException>(() => model.forward(ids))!;

        Assert.That(error.Message, Does.Contain("9 tokens").And.Contain("8 positions"));
    }

    [Test]
    public void Forward_Should_IgnoreLaterTokens_When_ComputingEarlierPositions()
    {
        // Causal attention: changing token 5 must not change positions 0..4
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        torch.manual_seed(0);
        using var model = new ClipTextModel(TinyConfig() with { HiddenAct = "gelu" });
        var ids = torch.randint(0, 100, [1, 10], ScalarType.Int64);
        var changed = ids.clone();
        changed[0, 5] = torch.tensor(101L);

        var a = model.forward(ids);
        var b = model.forward(changed);

        Assert.That(MaxAbsError(a[.., ..5], b[.., ..5]), Is.EqualTo(0));
        Assert.That(MaxAbsError(a[.., 5..], b[.., 5..]), Is.GreaterThan(1e-4));
    }

    private static ClipTextConfig TinyConfig() => new()
    {
        VocabSize = 514,
        HiddenSize = 16,
        IntermediateSize = 20,
        NumHiddenLayers = 2,
        NumAttentionHeads = 2,
    };

    private static double MaxAbsError(Tensor actual, Tensor expected)
    {
        Assert.That(actual.shape, Is.EqualTo(expected.shape));
        using var difference = (actual - expected).abs().max();
        return difference.item<float>();
    }
}
