using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>Two linear layers around the activation. Mirrors transformers' <c>CLIPMLP</c>.</summary>
internal sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> fc1;
    private readonly nn.Module<Tensor, Tensor> fc2;
    private readonly bool _quickGelu;

    public ClipMlp(ClipTextConfig config, Device? device) : base(nameof(ClipMlp))
    {
        fc1 = nn.Linear(config.HiddenSize, config.IntermediateSize, device: device);
        fc2 = nn.Linear(config.IntermediateSize, config.HiddenSize, device: device);
        _quickGelu = config.HiddenAct switch
        {
            "quick_gelu" => true,
            "gelu" => false,
            _ => throw new NotSupportedException($"hidden_act '{config.HiddenAct}' is not supported (supported: quick_gelu, gelu)"),
        };
        RegisterComponents();
    }

    /// <summary>[B, T, hidden] → [B, T, hidden].</summary>
    public override Tensor forward(Tensor hiddenStates)
    {
        using var up = fc1.call(hiddenStates);
        using var activated = _quickGelu ? QuickGelu(up) : nn.functional.gelu(up);
        return fc2.call(activated);
    }

    // OpenAI CLIP's sigmoid approximation of GELU: x * sigmoid(1.702 x).
    private static Tensor QuickGelu(Tensor x)
    {
        using var scaled = x * 1.702;
        using var gate = torch.sigmoid(scaled);
        return x * gate;
    }
}
