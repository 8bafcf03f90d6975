using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Tests.Training;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Lora;

/// <summary>Adapters on the tiny fixture model: initialisation, the merged weights, the parameters trained.</summary>
public sealed class LoraNetworkTests
{
    private static readonly LoraSettings Everything = new(Rank: 4, Alpha: 8, Dropout: 0, Attention: true, Resnets: true, TextEncoder: true);

    private static ClipTextModel TextEncoder() => ClipTextModel.FromPretrained(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));

    /// <summary>lora_B starts at zero (PEFT's init); give it values so the update is not trivially zero.</summary>
    internal static void Randomise(LoraNetwork network, long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var module in network.Modules)
            module.Adapter.Up.copy_(torch.randn(module.Adapter.Up.shape, generator: generator) * 0.05);
    }

    [Test]
    public void Merge_Should_EqualTheBasePlusAdapters_When_TheRankIsR()
    {
        // Given the UNet and text encoder with rank-4 adapters (alpha 8) on attention, resnets and the text encoder
        using var step = TinyUnetStep.Load();
        using var textEncoder = TextEncoder();
        step.Unet.eval();
        textEncoder.eval();
        using var ids = torch.arange(2 * 77, dtype: ScalarType.Int64).reshape(2, 77) % 500;
        using var noGrad = torch.no_grad();
        using var baseOnly = step.Predict();
        var network = LoraNetwork.Create(step.Unet, textEncoder, Everything, seed: 1);
        Randomise(network, 2);
        network.Strength = 0.7;
        using var withAdapters = step.Predict();
        using var encodedWithAdapters = textEncoder.Encode(ids);

        // When the adapters are merged into the weights
        network.Merge();
        using var merged = step.Predict();
        using var encodedMerged = textEncoder.Encode(ids);

        // Then the merged model computes what base + adapters computed (float32), and the adapters did change it
        Assert.That(network.Modules, Is.Empty, "merging removes the adapters");
        Assert.That((merged - withAdapters).abs().max().item<float>(), Is.LessThan(1e-4f));
        Assert.That((encodedMerged - encodedWithAdapters).abs().max().item<float>(), Is.LessThan(1e-4f));
        Assert.That((withAdapters - baseOnly).abs().max().item<float>(), Is.GreaterThan(1e-2f), "the test's adapters must matter");
    }

    [Test]
    public void Apply_Should_ChangeTheSampler_When_AKohyaLoraAdaptsProjInAndProjOut()
    {
        // Given the sampler's UNet (plain layers, eval, no autograd: the inference paths) and a LoRA on the transformers'
        // 1×1 proj_in/proj_out convolutions, which sd-scripts' default network adapts in SD 1.x (Transformer2DModel's
        // Linear and 1×1 Conv2d children; lora_down [r, in, 1, 1], lora_up [out, r, 1, 1])
        using var step = TinyUnetStep.Load();
        using var unet = UNet2DConditionModel.FromFolder(DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));
        unet.eval();
        using var noGrad = torch.no_grad();
        using var generator = new Generator(7);
        var layers = LoraNetwork.Layers(unet, null);
        var weights = layers.Keys.Where(k => k.Path.EndsWith(".proj_in", StringComparison.Ordinal) || k.Path.EndsWith(".proj_out", StringComparison.Ordinal))
            .Select(k =>
            {
                var shape = ((TorchSharp.Modules.Conv2d)layers[k]).weight!.shape;
                return new LoraModuleWeights(k.Component, k.Path, torch.randn([4, shape[1], 1, 1], generator: generator) * 0.25,
                    torch.randn([shape[0], 4, 1, 1], generator: generator) * 0.25, Alpha: 2);
            }).ToList();
        Assert.That(weights, Has.Count.EqualTo(12), "proj_in and proj_out of the tiny UNet's six transformers");
        using var baseOnly = unet.call(step.NoisyLatents, step.Timesteps, step.EncoderHiddenStates);

        // When the LoRA is attached as sample.lora attaches it, and when it is merged instead
        var network = LoraNetwork.Apply(weights, unet, null, strength: 1.0);
        using var attached = unet.call(step.NoisyLatents, step.Timesteps, step.EncoderHiddenStates);
        network.Merge();
        using var merged = unet.call(step.NoisyLatents, step.Timesteps, step.EncoderHiddenStates);

        // Then the attached adapters change the prediction exactly as the merged weights do (kohya's and diffusers' B·A·alpha/r)
        Assert.That((merged - baseOnly).abs().max().item<float>(), Is.GreaterThan(1e-2f), "the test's adapters must matter");
        Assert.That((attached - merged).abs().max().item<float>(), Is.LessThan(1e-4f));
    }

    [Test]
    public void Create_Should_StartFromTheBaseModel_WithGaussianDown_AndZeroUp()
    {
        using var step = TinyUnetStep.Load();
        step.Unet.eval();
        using var noGrad = torch.no_grad();
        using var before = step.Predict();

        using var network = LoraNetwork.Create(step.Unet, null, Everything with { Rank = 8, TextEncoder = false }, seed: 0);
        using var after = step.Predict();

        Assert.That(Same(after, before), Is.True, "lora_B = 0: the first step starts from the base model exactly");
        // Held until cat has returned: an unreferenced tensor may be finalized while libtorch reads it.
        var flattened = network.Modules.Select(m => m.Adapter.Down.flatten()).ToList();
        using var downs = torch.cat(flattened);
        foreach (var flat in flattened) flat.Dispose();
        Assert.That(downs.std().item<float>(), Is.EqualTo(1 / 8f).Within(0.01f), "PEFT's gaussian init: std 1/r");
        Assert.That(network.Modules.All(m => m.Adapter.Up.count_nonzero().item<long>() == 0), Is.True);
    }

    [Test]
    public void Targets_Should_BeTheAttentionProjections_ByDefault_AsDiffusersScript()
    {
        using var step = TinyUnetStep.Load();
        using var textEncoder = TextEncoder();
        var attention = new LoraSettings(4, 4, 0, Attention: true, Resnets: false, TextEncoder: false);

        var targets = LoraNetwork.Targets(step.Unet, textEncoder, attention);
        using var network = LoraNetwork.Create(step.Unet, textEncoder, attention, seed: 0);

        Assert.That(targets.Select(t => t.Path.Split('.')[^1] == "0" ? "to_out.0" : t.Path.Split('.')[^1]).Distinct(), Is.EquivalentTo(new[] { "to_q", "to_k", "to_v", "to_out.0" }));
        Assert.That(targets.All(t => t.Component == "unet" && t.Path.Contains(".transformer_blocks.", StringComparison.Ordinal)), Is.True);
        Assert.That(network.Parameters().Select(p => p.Name), Does.Contain("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight")
            .And.Contain("unet.up_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight"));
        Assert.That(network.ParameterCount, Is.EqualTo(LoraNetwork.CountParameters(targets, 4)));
        Assert.That(network.ParameterCount, Is.EqualTo(targets.Sum(t => 4 * (((SdPipeline.Training.Precision.AutocastLinear)t.Layer).InFeatures + ((SdPipeline.Training.Precision.AutocastLinear)t.Layer).OutFeatures))));
    }

    [Test]
    public void Backward_Should_ReachOnlyTheAdapters_When_TheBaseIsFrozen()
    {
        using var step = TinyUnetStep.Load();
        foreach (var parameter in step.Unet.parameters()) parameter.requires_grad = false;
        using var network = LoraNetwork.Create(step.Unet, null, Everything with { TextEncoder = false }, seed: 0);
        Randomise(network, 3);
        foreach (var (_, parameter) in network.Parameters()) parameter.requires_grad = true;

        using var loss = step.Loss(step.Predict());
        loss.backward();

        Assert.That(step.Unet.parameters().All(p => p.grad is null), Is.True);
        Assert.That(network.Parameters().All(p => p.Parameter.grad is { } g && g.abs().sum().item<float>() > 0), Is.True);
    }

    [Test]
    public void GradientCheckpointing_Should_RecomputeEveryBlock_AndGiveTheAdaptersTheSameGradients_When_TheBaseIsFrozen()
    {
        // Given a frozen UNet whose only trainable weights are adapters (so no block input needs a gradient)
        using var step = TinyUnetStep.Load(size: 16);
        foreach (var parameter in step.Unet.parameters()) parameter.requires_grad = false;
        using var network = LoraNetwork.Create(step.Unet, null, Everything with { TextEncoder = false }, seed: 0);
        Randomise(network, 4);
        foreach (var (_, parameter) in network.Parameters()) parameter.requires_grad = true;
        var calls = step.CountBlockCalls();
        Dictionary<string, Tensor> Gradients()
        {
            foreach (var (_, parameter) in network.Parameters()) parameter.grad = null;
            using (var loss = step.Loss(step.Predict())) loss.backward();
            return network.Parameters().ToDictionary(p => p.Name, p => p.Parameter.grad!.detach().clone());
        }
        var plain = Gradients();
        int plainCalls = calls();

        // When the blocks are checkpointed
        SdPipeline.Training.Checkpointing.GradientCheckpointing.Apply(step.Unet, network.HoldsTrainableAdapter);
        var checkpointed = Gradients();
        int checkpointedCalls = calls() - plainCalls;
        SdPipeline.Training.Checkpointing.GradientCheckpointing.Remove(step.Unet);

        // Then every block ran twice (forward, then recomputed in backward) and the gradients agree
        Assert.That(checkpointedCalls, Is.EqualTo(2 * plainCalls));
        foreach (var (name, gradient) in plain)
            Assert.That((checkpointed[name] - gradient).abs().max().item<float>(), Is.LessThan(1e-5f), name);
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
