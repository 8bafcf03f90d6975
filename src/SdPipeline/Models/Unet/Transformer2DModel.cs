using SdPipeline.Models.Shared;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// A spatial transformer: GroupNorm, project the feature map to tokens, run the transformer blocks with the text
/// embeddings, project back and add the input. Its forward is a pure function of (hidden states, text embeddings),
/// so training can recompute it in backward (gradient checkpointing).
/// </summary>
/// <remarks>Mirrors diffusers.models.transformers.transformer_2d.Transformer2DModel for continuous inputs.</remarks>
public sealed class Transformer2DModel : nn.Module<Tensor, Tensor?, Tensor>
{
    // diffusers hard-codes this epsilon (the resnets use norm_eps).
    private const double GroupNormEps = 1e-6;

    private readonly nn.Module<Tensor, Tensor> norm;
    private readonly nn.Module<Tensor, Tensor> proj_in;
    private readonly ModuleList<BasicTransformerBlock> transformer_blocks;
    private readonly nn.Module<Tensor, Tensor> proj_out;

    private readonly bool _useLinearProjection;

    /// <summary>Creates the transformer.</summary>
    /// <param name="numAttentionHeads">Heads.</param>
    /// <param name="attentionHeadDim">Width of one head.</param>
    /// <param name="inChannels">Channels of the feature map.</param>
    /// <param name="numLayers">Transformer blocks.</param>
    /// <param name="crossAttentionDim">Width of the text embeddings.</param>
    /// <param name="normNumGroups">GroupNorm groups.</param>
    /// <param name="useLinearProjection"><c>proj_in</c>/<c>proj_out</c> are Linear (SD 2.x) rather than 1×1 convolutions.</param>
    /// <param name="upcastAttention">Attention in float32 under half precision.</param>
    /// <param name="device">Where to create the parameters.</param>
    public Transformer2DModel(long numAttentionHeads, long attentionHeadDim, long inChannels, int numLayers, long crossAttentionDim,
        long normNumGroups, bool useLinearProjection, bool upcastAttention, Device? device = null) : base(nameof(Transformer2DModel))
    {
        long innerDim = numAttentionHeads * attentionHeadDim;
        norm = Norms.GroupNorm(normNumGroups, inChannels, GroupNormEps, device);
        proj_in = useLinearProjection
            ? nn.Linear(inChannels, innerDim, device: device)
            : nn.Conv2d(inChannels, innerDim, kernel_size: 1, stride: 1, padding: 0L, device: device);
        transformer_blocks = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new BasicTransformerBlock(innerDim, numAttentionHeads, attentionHeadDim, crossAttentionDim, upcastAttention, device))
            .ToArray());
        proj_out = useLinearProjection
            ? nn.Linear(innerDim, inChannels, device: device)
            : nn.Conv2d(innerDim, inChannels, kernel_size: 1, stride: 1, padding: 0L, device: device);
        _useLinearProjection = useLinearProjection;
        RegisterComponents();
    }

    // In inference on the CPU in float32, the 1×1 convolutions proj_in and proj_out run as batched GEMMs that read and
    // write the token layout directly: the permute copies around them go, and MKL's GEMM beats oneDNN's 1×1
    // convolution here (10–15%, docs/performance.md). Training keeps diffusers' convolutions and their gradients. A layer
    // a hook watches (a LoRA adapter: kohya's SD 1.x networks adapt proj_in and proj_out) is called as it is, or the hook
    // would never run.
    private bool UsesTokenGemms(Tensor hiddenStates) =>
        this.InInference()
        && hiddenStates.device_type == DeviceType.CPU && hiddenStates.dtype == ScalarType.Float32
        && proj_in is Conv2d { bias: not null, weight.dtype: ScalarType.Float32 }
        && proj_out is Conv2d { bias: not null, weight.dtype: ScalarType.Float32 }
        && !Convolutions.HasHooks(proj_in) && !Convolutions.HasHooks(proj_out);

    /// <summary>Transforms a feature map [B, C, H, W] conditioned on <paramref name="encoderHiddenStates"/> [B, M, D].</summary>
    public override Tensor forward(Tensor hiddenStates, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope(); // frees the intermediates on return (docs/performance.md, memory)
        var residual = hiddenStates;
        long batch = hiddenStates.shape[0], height = hiddenStates.shape[2], width = hiddenStates.shape[3];

        // 1. input: [B, C, H, W] → tokens [B, H·W, inner]
        hiddenStates = Norms.Apply(norm, hiddenStates, inference: this.InInference());
        long innerDim;
        bool tokenGemms = UsesTokenGemms(hiddenStates);
        if (tokenGemms)
        {
            var conv = (Conv2d)proj_in;
            innerDim = conv.weight!.shape[0];
            long inChannels = conv.weight.shape[1];
            // tokens [B, H·W, C] = xᵀ·Wᵀ + b, reading x [B, C, H·W] transposed in place
            var tokens = hiddenStates.reshape(batch, inChannels, height * width).transpose(1, 2);
            var weight = conv.weight.view(innerDim, inChannels).t().expand(batch, inChannels, innerDim);
            // TorchSharp's batch1.baddbmm(batch2, input) is ATen's input.baddbmm(batch1, batch2)
            hiddenStates = tokens.baddbmm(weight, conv.bias!.view(1, 1, innerDim).expand(batch, height * width, innerDim));
        }
        else if (!_useLinearProjection)
        {
            hiddenStates = proj_in.call(hiddenStates);
            innerDim = hiddenStates.shape[1];
            hiddenStates = hiddenStates.permute(0, 2, 3, 1).reshape(batch, height * width, innerDim);
        }
        else
        {
            innerDim = hiddenStates.shape[1];
            hiddenStates = proj_in.call(hiddenStates.permute(0, 2, 3, 1).reshape(batch, height * width, innerDim));
        }

        scope.DisposeEverythingBut(hiddenStates); // the norm's output and the layout copies

        // 2. blocks
        foreach (var block in transformer_blocks)
        {
            hiddenStates = block.call(hiddenStates, encoderHiddenStates);
            scope.DisposeEverythingBut(hiddenStates);
        }

        // 3. output: tokens → [B, C, H, W], plus the input
        if (tokenGemms)
        {
            var conv = (Conv2d)proj_out;
            long outChannels = conv.weight!.shape[0];
            // [B, C, H·W] = W·tokensᵀ + b, reading the tokens transposed in place
            var weight = conv.weight.view(outChannels, innerDim).expand(batch, outChannels, innerDim);
            hiddenStates = weight.baddbmm(hiddenStates.transpose(1, 2), conv.bias!.view(1, outChannels, 1).expand(batch, outChannels, height * width))
                .view(batch, outChannels, height, width);
        }
        else if (!_useLinearProjection)
        {
            hiddenStates = hiddenStates.reshape(batch, height, width, innerDim).permute(0, 3, 1, 2).contiguous();
            hiddenStates = proj_out.call(hiddenStates);
        }
        else
        {
            hiddenStates = proj_out.call(hiddenStates);
            hiddenStates = hiddenStates.reshape(batch, height, width, innerDim).permute(0, 3, 1, 2).contiguous();
        }
        return scope.MoveToOuter(hiddenStates + residual);
    }
}
