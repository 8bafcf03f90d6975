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

    /// <summary>Transforms a feature map [B, C, H, W] conditioned on <paramref name="encoderHiddenStates"/> [B, M, D].</summary>
    public override Tensor forward(Tensor hiddenStates, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope(); // frees the intermediates on return (docs/performance.md, memory)
        var residual = hiddenStates;
        long batch = hiddenStates.shape[0], height = hiddenStates.shape[2], width = hiddenStates.shape[3];

        // 1. input: [B, C, H, W] → tokens [B, H·W, inner]
        hiddenStates = norm.call(hiddenStates);
        long innerDim;
        if (!_useLinearProjection)
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
        if (!_useLinearProjection)
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
