using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Shared;
using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
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

    // The models' plain TorchSharp layers and their autocast replacements (AutocastLayers.Apply) alike; LoRA adapters
    // ride on a layer through a forward hook, so they are looked up beside it.
    private static IEnumerable<OperationProbe> ProbesOf(nn.Module module)
    {
        switch (module)
        {
            case Conv2d conv:
                return ConvolutionProbes(module, conv.weight, conv.stride[0], conv.padding![0]);
            case AutocastConv2d conv:
                return ConvolutionProbes(module, conv.weight, conv.Stride[0], conv.Padding[0]);
            case Linear linear:
                return LinearProbes(module, linear.in_features, linear.out_features);
            case AutocastLinear linear:
                return LinearProbes(module, linear.InFeatures, linear.OutFeatures);
            case GroupNorm groupNorm:
                return [new GroupNormProbe(groupNorm.num_groups, groupNorm.weight!.shape[0], groupNorm.eps)];
            case AutocastGroupNorm groupNorm:
                return [new GroupNormProbe(groupNorm.num_groups, groupNorm.weight.shape[0], groupNorm.eps)];
            case LayerNorm layerNorm:
                return [new LayerNormProbe(layerNorm.weight!.shape[0], layerNorm.eps)];
            case AutocastLayerNorm layerNorm:
                return [new LayerNormProbe(layerNorm.weight.shape[0], layerNorm.eps)];
            case Attention attention:
                return [new AttentionProbe(attention.Heads, HeadDim(attention, "to_q.weight", attention.Heads))];
            case ClipAttention clipAttention:
                return [new AttentionProbe(clipAttention.Heads, HeadDim(clipAttention, "q_proj.weight", clipAttention.Heads))];
            default:
                return [];
        }
    }

    private static IEnumerable<OperationProbe> ConvolutionProbes(nn.Module layer, Tensor weight, long stride, long padding)
    {
        long outChannels = weight.shape[0], inChannels = weight.shape[1], kernel = weight.shape[2];
        yield return Conv2dProbe.For(inChannels, outChannels, kernel, stride, padding);
        if (LoraNetwork.AdapterOn(layer) is { } adapter)
        {
            yield return Conv2dProbe.For(inChannels, adapter.Rank, adapter.Down.shape[2], stride, adapter.Down.shape[2] == 1 ? 0 : padding);
            yield return Conv2dProbe.For(adapter.Rank, outChannels, 1, 1, 0);
        }
    }

    private static IEnumerable<OperationProbe> LinearProbes(nn.Module layer, long inFeatures, long outFeatures)
    {
        yield return LinearProbe.For(inFeatures, outFeatures);
        if (LoraNetwork.AdapterOn(layer) is { } adapter)
        {
            yield return LinearProbe.For(inFeatures, adapter.Rank);
            yield return LinearProbe.For(adapter.Rank, outFeatures);
        }
    }

    private static long HeadDim(nn.Module attention, string queryWeight, long heads) =>
        attention.named_parameters().First(p => p.name == queryWeight).parameter.shape[0] / heads;
}
