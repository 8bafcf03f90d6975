using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Training.Precision;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training.Precision;

/// <summary>
/// <see cref="AutocastLayers.Apply"/> changes a loaded model from outside: the replaced model must save the same file
/// (keys, order, values) and compute the same output as the plain one until a region is entered.
/// </summary>
public sealed class AutocastLayersApplyTests
{
    [Test]
    public void Apply_Should_KeepKeysOrderValuesAndOutput_When_ReplacingTheUNetsLayers()
    {
        // Given the tiny UNet, its state and its output as loaded
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        using var fixture = SafeTensorsFile.Open(Path.Combine(RepoPaths.Fixtures, "parity", "unet.safetensors"));
        var before = unet.state_dict().Select(kv => (kv.Key, Value: kv.Value.clone())).ToList();
        var expected = unet.call(fixture.Read("sample"), fixture.Read("timesteps"), fixture.Read("encoder_hidden_states"));

        // When its layers are replaced
        int replaced = AutocastLayers.Apply(unet);

        // Then no plain layer is left, every key is where it was with the same value, and the output is bit for bit the same
        Assert.That(replaced, Is.EqualTo(unet.modules().Count(m => m is AutocastLayer)).And.GreaterThan(0));
        Assert.That(unet.modules().Where(m => m is Linear or Conv2d or GroupNorm or LayerNorm), Is.Empty);
        var after = unet.state_dict().ToList();
        Assert.That(after.Select(kv => kv.Key), Is.EqualTo(before.Select(kv => kv.Key)));
        foreach (var ((key, value), (_, now)) in before.Zip(after))
            Assert.That(torch.equal(value, now).all().item<bool>(), Is.True, key);
        var actual = unet.call(fixture.Read("sample"), fixture.Read("timesteps"), fixture.Read("encoder_hidden_states"));
        Assert.That(torch.equal(actual, expected).all().item<bool>(), Is.True);
    }

    [Test]
    public void Apply_Should_NameTheField_When_ItIsDeclaredAsAConcreteLayerType()
    {
        // Given a module that declares its child as TorchSharp's sealed Linear
        using var model = new ConcretelyTyped();

        // Then the replacement cannot fit, and the error says which field and what to declare instead
        var error = Assert.Throws<InvalidOperationException>(() => AutocastLayers.Apply(model))!;
        Assert.That(error.Message, Does.Contain("ConcretelyTyped.proj").And.Contain("nn.Module<Tensor, Tensor>"));
    }

    private sealed class ConcretelyTyped : nn.Module<Tensor, Tensor>
    {
#pragma warning disable IDE1006 // a weight key
        private readonly Linear proj = nn.Linear(2, 2);
#pragma warning restore IDE1006

        public ConcretelyTyped() : base(nameof(ConcretelyTyped)) => RegisterComponents();

        public override Tensor forward(Tensor input) => proj.call(input);
    }
}
