using SdPipeline.Models.Clip;
using SdPipeline.Models.Shared;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Numerics;

/// <summary>The distinct operation configurations a model runs, read from its layers, for the self-check.</summary>
public static class OperationInventory
{
    /// <summary>
    /// One probe per distinct configuration of the convolutions, linear layers (with their LoRA adapters), norms and
    /// attention in <paramref name="models"/>, plus the activations Stable Diffusion uses. Works on models built on the
    /// <c>meta</c> device, so the check of an architecture needs no weights.
    /// </summary>
    public static IReadOnlyList<OperationProbe> Of(params nn.Module[] models)
    {
        var probes = new List<OperationProbe>();
        foreach (var model in models)
            foreach (var (_, module) in model.named_modules())
                probes.AddRange(ProbesOf(module));
        probes.AddRange([new ActivationProbe("silu"), new ActivationProbe("gelu"), new ActivationProbe("quick_gelu")]);
        return [.. probes.Distinct()];
    }

    private static IEnumerable<OperationProbe> ProbesOf(nn.Module module)
    {
        switch (module)
        {
            case AutocastConv2d conv:
                long outChannels = conv.weight.shape[0], inChannels = conv.weight.shape[1], kernel = conv.KernelSize[0];
                yield return Conv2dProbe.For(inChannels, outChannels, kernel, conv.Stride[0], conv.Padding[0]);
                if (conv.Lora is { } convAdapter)
                {
                    yield return Conv2dProbe.For(inChannels, convAdapter.Rank, kernel, conv.Stride[0], conv.Padding[0]);
                    yield return Conv2dProbe.For(convAdapter.Rank, outChannels, 1, 1, 0);
                }
                break;
            case AutocastLinear linear:
                yield return LinearProbe.For(linear.InFeatures, linear.OutFeatures);
                if (linear.Lora is { } linearAdapter)
                {
                    yield return LinearProbe.For(linear.InFeatures, linearAdapter.Rank);
                    yield return LinearProbe.For(linearAdapter.Rank, linear.OutFeatures);
                }
                break;
            case AutocastGroupNorm groupNorm:
                yield return new GroupNormProbe(groupNorm.num_groups, groupNorm.weight.shape[0], groupNorm.eps);
                break;
            case AutocastLayerNorm layerNorm:
                yield return new LayerNormProbe(layerNorm.weight.shape[0], layerNorm.eps);
                break;
            case Attention attention:
                yield return new AttentionProbe(attention.Heads, HeadDim(attention, "to_q.weight", attention.Heads));
                break;
            case ClipAttention clipAttention:
                yield return new AttentionProbe(clipAttention.Heads, HeadDim(clipAttention, "q_proj.weight", clipAttention.Heads));
                break;
        }
    }

    private static long HeadDim(nn.Module attention, string queryWeight, long heads) =>
        attention.named_parameters().First(p => p.name == queryWeight).parameter.shape[0] / heads;
}
