using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Training.Precision;
using SdPipeline.Weights;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Lora;

/// <summary>
/// The LoRA adapters of a UNet (and text encoder): attaches them to the target layers — freshly initialised for training
/// (PEFT's <c>init_lora_weights="gaussian"</c>, as diffusers' train_text_to_image_lora.py: lora_A ~ N(0, (1/r)²),
/// lora_B = 0, so training starts from the base model exactly) or from a file — and lists, merges or removes them.
/// Parameter names are the diffusers/PEFT file's keys (<c>unet.PATH.lora_A.weight</c>).
/// </summary>
public sealed class LoraNetwork : IDisposable
{
    /// <summary>The UNet's component name (key prefix).</summary>
    public const string Unet = "unet";

    /// <summary>The text encoder's component name (key prefix).</summary>
    public const string TextEncoder = "text_encoder";

    /// <summary>SDXL's second text encoder's component name (key prefix).</summary>
    public const string TextEncoder2 = "text_encoder_2";

    // PEFT matches target_modules as name suffixes: diffusers' script targets ["to_k", "to_q", "to_v", "to_out.0"] and,
    // for the text encoder, ["q_proj", "k_proj", "v_proj", "out_proj"].
    private static readonly Regex AttentionLayer = new(@"(^|\.)(to_q|to_k|to_v|to_out\.0)$", RegexOptions.CultureInvariant);
    private static readonly Regex ResnetLayer = new(@"(^|\.)resnets\.\d+\.(conv1|conv2|conv_shortcut)$", RegexOptions.CultureInvariant);
    private static readonly Regex TextAttentionLayer = new(@"(^|\.)self_attn\.(q_proj|k_proj|v_proj|out_proj)$", RegexOptions.CultureInvariant);

    // Which layer carries which adapter, for whoever inspects a model from outside (the numerics self-check's inventory):
    // a forward hook leaves no trace in the layer itself. Weak, so a layer dropped without Detach does not stay alive.
    private static readonly ConditionalWeakTable<nn.Module, LoraAdapter> AttachedAdapters = new();

    private readonly List<LoraModule> _modules;
    private readonly List<Action> _hooks;

    private LoraNetwork(List<(LoraModule Module, Action Hook)> attached)
    {
        _modules = attached.Select(a => a.Module).ToList();
        _hooks = attached.Select(a => a.Hook).ToList();
    }

    /// <summary>Every adapter, UNet first, in module order.</summary>
    public IReadOnlyList<LoraModule> Modules => _modules;

    /// <summary>Trainable elements of all adapters.</summary>
    public long ParameterCount => _modules.Sum(m => m.Adapter.ParameterCount);

    /// <summary>Sets every adapter's strength (1 as trained, 0 the base model).</summary>
    public double Strength
    {
        set
        {
            foreach (var module in _modules) module.Adapter.Strength = value;
        }
    }

    /// <summary>
    /// The layers <paramref name="settings"/> targets in <paramref name="unet"/> and, when it trains them, <paramref name="textEncoder"/>
    /// and SDXL's <paramref name="textEncoder2"/> (the same attention projections in both, as diffusers' SDXL LoRA script).
    /// </summary>
    public static IReadOnlyList<(string Component, string Path, nn.Module Layer)> Targets(UNet2DConditionModel unet, ClipTextModel? textEncoder, LoraSettings settings,
        ClipTextModelWithProjection? textEncoder2 = null)
    {
        ArgumentNullException.ThrowIfNull(unet);
        ArgumentNullException.ThrowIfNull(settings);
        var targets = new List<(string, string, nn.Module)>();
        foreach (var (path, module) in unet.named_modules())
            if ((settings.Attention && IsLinear(module) && AttentionLayer.IsMatch(path)) ||
                (settings.Resnets && IsConvolution(module) && ResnetLayer.IsMatch(path)))
                targets.Add((Unet, path, module));
        if (settings.TextEncoder && textEncoder is not null)
            foreach (var (path, module) in textEncoder.named_modules())
                if (IsLinear(module) && TextAttentionLayer.IsMatch(path))
                    targets.Add((TextEncoder, path, module));
        if (settings.TextEncoder && textEncoder2 is not null)
            foreach (var (path, module) in textEncoder2.named_modules())
                if (IsLinear(module) && TextAttentionLayer.IsMatch(path))
                    targets.Add((TextEncoder2, path, module));
        return targets;
    }

    /// <summary>The trainable elements adapters of rank <paramref name="rank"/> on <paramref name="targets"/> would have.</summary>
    public static long CountParameters(IEnumerable<(string Component, string Path, nn.Module Layer)> targets, int rank) =>
        targets.Sum(t => Weight(t.Layer).shape switch
        {
            [long outFeatures, long inFeatures] => rank * (inFeatures + outFeatures),
            [long outChannels, long inChannels, long kernelHeight, long kernelWidth] => rank * (inChannels * kernelHeight * kernelWidth + outChannels),
            _ => 0L,
        });

    /// <summary>
    /// Stores the frozen linear and convolution weights of <paramref name="model"/> in <paramref name="dtype"/> (half the
    /// memory of float32; autocast would cast them to it on every call anyway). The model then runs only inside an
    /// autocast region of that dtype; adapters stay float32.
    /// </summary>
    public static void StoreFrozenWeights(nn.Module model, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var noGrad = torch.no_grad();
        foreach (var module in model.modules())
        {
            switch (module)
            {
                case AutocastLinear or AutocastConv2d when module is AutocastLayer layer && layer.weight.dtype != dtype:
                    layer.weight = Frozen(layer.weight, dtype);
                    break;
                case Linear or Conv2d:
                    throw new InvalidOperationException($"{module.GetName()} is a plain layer, which cannot take half-precision weights: apply {nameof(AutocastLayers)} to the model first");
            }
        }

        static Parameter Frozen(Parameter weight, ScalarType dtype)
        {
            var half = weight.to(dtype).AsParameter();
            half.requires_grad = false;
            return half;
        }
    }

    /// <summary>Attaches freshly initialised adapters for training; the models' own parameters are left as they are.</summary>
    /// <param name="unet">The UNet.</param>
    /// <param name="textEncoder">The text encoder (adapters only when <see cref="LoraSettings.TextEncoder"/>).</param>
    /// <param name="settings">Rank, alpha, dropout, targets.</param>
    /// <param name="seed">Seed of lora_A's initialisation.</param>
    /// <param name="textEncoder2">SDXL's second text encoder (adapters only when <see cref="LoraSettings.TextEncoder"/>), drawn after the others.</param>
    public static LoraNetwork Create(UNet2DConditionModel unet, ClipTextModel? textEncoder, LoraSettings settings, long seed, ClipTextModelWithProjection? textEncoder2 = null)
    {
        var targets = Targets(unet, textEncoder, settings, textEncoder2);
        if (targets.Count == 0) throw new InvalidOperationException("no layer of the model matches train.lora_targets");
        using var generator = new Generator((ulong)seed);
        var modules = new List<(LoraModule, Action)>();
        foreach (var (component, path, layer) in targets)
        {
            using var scope = torch.NewDisposeScope();
            var (down, up) = Weight(layer).shape switch
            {
                [long outFeatures, long inFeatures] => (new long[] { settings.Rank, inFeatures }, new long[] { outFeatures, settings.Rank }),
                [long outChannels, long inChannels, long kernelHeight, long kernelWidth] => (new long[] { settings.Rank, inChannels, kernelHeight, kernelWidth }, new long[] { outChannels, settings.Rank, 1, 1 }),
                _ => throw new InvalidOperationException($"{component}.{path} is neither a linear layer nor a convolution"),
            };
            var device = Weight(layer).device;
            // PEFT's gaussian init: nn.init.normal_(lora_A, std=1/r); lora_B zeros.
            var downWeight = (torch.randn(down, generator: generator) * (1.0 / settings.Rank)).to(device).AsParameter();
            var upWeight = torch.zeros(up, device: device).AsParameter();
            modules.Add(Attach(component, path, layer, new LoraAdapter(downWeight, upWeight, settings.Alpha, settings.Dropout, Stride(layer), Padding(layer))));
        }
        return new LoraNetwork(modules);
    }

    /// <summary>Attaches adapters read from a file (see <see cref="LoraFile.Read"/>) at <paramref name="strength"/>, for sampling.</summary>
    /// <exception cref="WeightsException">A layer the file names is not in the models, or its shapes do not fit.</exception>
    public static LoraNetwork Apply(IReadOnlyList<LoraModuleWeights> weights, UNet2DConditionModel unet, ClipTextModel? textEncoder, double strength,
        ClipTextModelWithProjection? textEncoder2 = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var layers = Layers(unet, textEncoder, textEncoder2);
        var modules = new List<(LoraModule, Action)>();
        foreach (var w in weights)
        {
            if (!layers.TryGetValue((w.Component, w.Path), out var layer))
                throw new WeightsException($"the LoRA has weights for {w.Component}.{w.Path}, which is not a linear or convolution layer of this model " +
                    "(a LoRA for another architecture, such as SDXL?)");
            var expected = Weight(layer).shape;
            var device = Weight(layer).device;
            bool fits = w.Down.dim() == expected.Length && w.Up.shape[0] == expected[0] && w.Down.shape[1] == expected[1]
                && (expected.Length == 2 || (w.Down.shape[2] == expected[2] || w.Down.shape[2] == 1));
            if (!fits)
                throw new WeightsException($"the LoRA's {w.Component}.{w.Path} has down {Shape(w.Down)} and up {Shape(w.Up)}, which do not fit the layer's weight {Shape(expected)}");
            var down = w.Down.to(ScalarType.Float32).to(device).clone().AsParameter();
            var up = w.Up.to(ScalarType.Float32).to(device).clone().AsParameter();
            down.requires_grad = false;
            up.requires_grad = false;
            var adapter = new LoraAdapter(down, up, w.Alpha, 0, Stride(layer), w.Down.dim() == 4 && w.Down.shape[2] == 1 ? [0, 0] : Padding(layer)) { Strength = strength };
            modules.Add(Attach(w.Component, w.Path, layer, adapter));
        }
        return new LoraNetwork(modules);
    }

    /// <summary>Every linear and convolution layer of the models by (component, path): the layers a LoRA file may name.</summary>
    public static IReadOnlyDictionary<(string Component, string Path), nn.Module> Layers(UNet2DConditionModel unet, ClipTextModel? textEncoder,
        ClipTextModelWithProjection? textEncoder2 = null)
    {
        ArgumentNullException.ThrowIfNull(unet);
        var layers = new Dictionary<(string, string), nn.Module>();
        foreach (var (path, module) in unet.named_modules())
            if (IsLinear(module) || IsConvolution(module)) layers[(Unet, path)] = module;
        if (textEncoder is not null)
            foreach (var (path, module) in textEncoder.named_modules())
                if (IsLinear(module) || IsConvolution(module)) layers[(TextEncoder, path)] = module;
        if (textEncoder2 is not null)
            foreach (var (path, module) in textEncoder2.named_modules())
                if (IsLinear(module) || IsConvolution(module)) layers[(TextEncoder2, path)] = module;
        return layers;
    }

    /// <summary>The paths of every linear and convolution layer of <paramref name="unet"/> (<see cref="OriginalUnetNumbering.Of"/> reads them).</summary>
    public static IReadOnlyCollection<string> UnetLayerPaths(UNet2DConditionModel unet) => Layers(unet, null).Keys.Select(k => k.Path).ToList();

    /// <summary>The adapters' weights by diffusers/PEFT key (<c>unet.PATH.lora_A.weight</c>, <c>…lora_B.weight</c>).</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters() =>
        _modules.SelectMany(m => new[] { (m.DownName, m.Adapter.Down), (m.UpName, m.Adapter.Up) }).ToList();

    /// <summary>The adapters as file weights (sharing the tensors; do not dispose them).</summary>
    public IReadOnlyList<LoraModuleWeights> ToWeights() =>
        _modules.Select(m => new LoraModuleWeights(m.Component, m.Path, m.Adapter.Down, m.Adapter.Up, m.Adapter.Alpha)).ToList();

    /// <summary>Adds each adapter's update (at its strength) into its layer's weight and removes the adapters.</summary>
    public void Merge()
    {
        using var noGrad = torch.no_grad();
        foreach (var module in _modules)
        {
            var weight = Weight(module.Layer);
            using var delta = module.Adapter.WeightDelta();
            weight.add_(delta.to(weight.dtype).to(weight.device));
        }
        Detach();
    }

    /// <summary>The adapter attached to <paramref name="layer"/>, or null when it carries none.</summary>
    public static LoraAdapter? AdapterOn(nn.Module layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return AttachedAdapters.TryGetValue(layer, out var adapter) ? adapter : null;
    }

    /// <summary>Whether <paramref name="block"/> contains a layer whose adapter is being trained.</summary>
    public bool HoldsTrainableAdapter(nn.Module block)
    {
        var layers = block.modules().ToHashSet();
        return _modules.Any(m => layers.Contains(m.Layer) && (m.Adapter.Down.requires_grad || m.Adapter.Up.requires_grad));
    }

    /// <summary>Removes the adapters from their layers (the base model again) and disposes them.</summary>
    public void Detach()
    {
        foreach (var removeHook in _hooks) removeHook();
        foreach (var module in _modules)
        {
            AttachedAdapters.Remove(module.Layer);
            module.Adapter.Dispose();
        }
        _hooks.Clear();
        _modules.Clear();
    }

    /// <inheritdoc />
    public void Dispose() => Detach();

    // PEFT replaces the layer by a LoraLayer around it; a forward hook adds the same update while leaving the layer,
    // and so the model's state_dict keys and parameters, as they are.
    private static (LoraModule, Action) Attach(string component, string path, nn.Module layer, LoraAdapter adapter)
    {
        if (layer is not nn.Module<Tensor, Tensor> callable)
            throw new InvalidOperationException($"{component}.{path} ({layer.GetType().Name}) cannot carry a LoRA adapter");
        var hook = callable.register_forward_hook((module, input, output) =>
        {
            using var update = adapter.Forward(input, module.training);
            using (output) return output + update;
        });
        AttachedAdapters.AddOrUpdate(layer, adapter);
        return (new LoraModule(component, path, layer, adapter), hook.remove);
    }

    private static bool IsLinear(nn.Module module) => module is Linear or AutocastLinear;

    private static bool IsConvolution(nn.Module module) => module is Conv2d or AutocastConv2d;

    private static Parameter Weight(nn.Module layer) => layer switch
    {
        Linear linear => linear.weight,
        Conv2d conv => conv.weight,
        AutocastLinear or AutocastConv2d => ((AutocastLayer)layer).weight,
        _ => throw new InvalidOperationException($"{layer.GetName()} is neither a linear layer nor a convolution"),
    };

    private static long[]? Stride(nn.Module layer) => layer switch
    {
        Conv2d conv => conv.stride,
        AutocastConv2d conv => [.. conv.Stride],
        _ => null,
    };

    private static long[]? Padding(nn.Module layer) => layer switch
    {
        Conv2d conv => conv.padding,
        AutocastConv2d conv => [.. conv.Padding],
        _ => null,
    };

    private static string Shape(Tensor tensor) => Shape(tensor.shape);

    private static string Shape(long[] shape) => $"[{string.Join(", ", shape)}]";
}
