using SdPipeline.Tests.Support;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Weights;

public sealed class StateDictLoaderTests
{
    private sealed class Tiny : nn.Module
    {
        // Field names are the weight keys, as in the model classes.
#pragma warning disable IDE1006
        public readonly nn.Module<Tensor, Tensor> proj_in;
        public readonly nn.Module<Tensor, Tensor> norm;
#pragma warning restore IDE1006

        public Tiny(int width = 4) : base(nameof(Tiny))
        {
            proj_in = nn.Linear(width, 3);
            norm = nn.LayerNorm(3);
            RegisterComponents();
        }
    }

    private static Dictionary<string, Tensor> StateOf(nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    [Test]
    public void SaveThenLoad_Should_RoundTripBitExactly()
    {
        using var temp = new TempFolder();
        var source = new Tiny();
        SafeTensorsWriter.Write(temp.File("w.safetensors"), StateOf(source));

        var target = new Tiny();
        StateDictLoader.Load(target, [temp.File("w.safetensors")]);

        foreach (var (name, tensor) in source.state_dict())
            Assert.That(target.state_dict()[name].bytes.ToArray(), Is.EqualTo(tensor.bytes.ToArray()), name);
    }

    [Test]
    public void Load_Should_ListMissingUnexpectedAndWronglyShapedKeys_InOneError()
    {
        // Given a file with one key missing, one extra and one of the wrong shape
        using var temp = new TempFolder();
        var state = StateOf(new Tiny());
        state.Remove("norm.bias");
        state["extra.weight"] = torch.zeros(2);
        state["proj_in.weight"] = torch.zeros(3, 5);
        SafeTensorsWriter.Write(temp.File("w.safetensors"), state);

        // When it is loaded strictly
        var error = Assert.Throws<WeightsException>(() => StateDictLoader.Load(new Tiny(), [temp.File("w.safetensors")]))!;

        // Then the one message names the file and all three keys
        Assert.That(error.Message, Does.Contain("w.safetensors").And.Contain("1 missing, 1 unexpected, 1 wrongly shaped"));
        Assert.That(error.Message, Does.Contain("norm.bias").And.Contain("extra.weight").And.Contain("proj_in.weight: file [3, 5], model [3, 4]"));
    }

    [Test]
    public void Load_Should_RefuseAnIntegerTensor_ForAFloatParameter_And_ConvertOtherFloatWidths()
    {
        // Given one file whose norm.bias holds int32 values, and one whose weights are float64
        using var temp = new TempFolder();
        var state = StateOf(new Tiny());
        state["norm.bias"] = torch.ones(3, ScalarType.Int32);
        SafeTensorsWriter.Write(temp.File("int.safetensors"), state);
        var wide = StateOf(new Tiny()).ToDictionary(p => p.Key, p => p.Value.to(ScalarType.Float64));
        SafeTensorsWriter.Write(temp.File("f64.safetensors"), wide);

        // Then the integer one is refused, naming the key and both types, and the float64 one loads
        var error = Assert.Throws<WeightsException>(() => StateDictLoader.Load(new Tiny(), [temp.File("int.safetensors")]))!;
        Assert.That(error.Message, Does.Contain("norm.bias: file Int32, model Float32"));
        var target = new Tiny();
        StateDictLoader.Load(target, [temp.File("f64.safetensors")]);
        Assert.That(target.state_dict()["proj_in.weight"].allclose(wide["proj_in.weight"].to(ScalarType.Float32)), Is.True);
    }

    [Test]
    public void Load_Should_AcceptLegacyNames_When_CompatibilityListsThem()
    {
        using var temp = new TempFolder();
        var state = StateOf(new Tiny());
        state["old.proj.weight"] = state["proj_in.weight"];
        state.Remove("proj_in.weight");
        state["position_ids"] = torch.arange(3);
        SafeTensorsWriter.Write(temp.File("w.safetensors"), state);
        var compatibility = new KeyCompatibility(new HashSet<string> { "position_ids" }, new Dictionary<string, string> { ["old.proj.weight"] = "proj_in.weight" });

        var target = new Tiny();
        StateDictLoader.Load(target, [temp.File("w.safetensors")], compatibility);

        Assert.That(target.state_dict()["proj_in.weight"].bytes.ToArray(), Is.EqualTo(state["old.proj.weight"].bytes.ToArray()));
    }

    [Test]
    public void Load_Should_ConvertDType_When_FileIsHalfPrecision()
    {
        using var temp = new TempFolder();
        var state = StateOf(new Tiny()).ToDictionary(p => p.Key, p => p.Value.to(ScalarType.Float16));
        SafeTensorsWriter.Write(temp.File("w.fp16.safetensors"), state);

        var target = new Tiny();
        StateDictLoader.Load(target, [temp.File("w.fp16.safetensors")]);

        var loaded = target.state_dict()["proj_in.weight"];
        Assert.That(loaded.dtype, Is.EqualTo(ScalarType.Float32));
        Assert.That(loaded.allclose(state["proj_in.weight"].to(ScalarType.Float32)), Is.True);
    }
}
