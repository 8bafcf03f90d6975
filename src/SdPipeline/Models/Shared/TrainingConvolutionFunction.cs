using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// A 3×3, stride-1, zero-padded convolution with a gradient, for training on AMD's CPUs. From 16×16 positions, where the
/// batch's transformed tiles fit one chunk, the forward and both gradients are by Winograd's F(2×2, 3×3) — from 32×32, with
/// both sides multiples of 4, F(4×4, 3×3) (<see cref="WinogradConvolution.TileSide"/>) — with their
/// products on the micro-kernel (<see cref="WinogradConvolution.ConvolveForTraining"/>; the input's gradient is the
/// convolution of the output's gradient by the weight flipped and transposed). Larger inputs: from 32×32 positions the
/// forward and the input's gradient by <see cref="WinogradConvolution.ConvolvePlain(Tensor, Tensor, Tensor?, long, long)"/>, the weight's gradient by
/// Winograd too from 64×64 positions over the batch (<see cref="WinogradConvolution.WeightGradient"/>). Below 16×16 the
/// forward and the input's gradient are libtorch's own convolution and transposed convolution, the weight's gradient
/// im2col and one GEMM an image written straight into the gradient. The bias's gradient is a sum. Arguments of
/// <c>apply</c>: the input [B, C_in, H, W], the weight [C_out, C_in, 3, 3] and the bias [C_out] or null.
/// </summary>
/// <remarks>
/// Below 16×16 the arithmetic is libtorch's, with one step fewer: libtorch's own backward zeroes the weight's gradient
/// and then adds the GEMM's product into it, a pass over the weight and another read of it, which at the UNet's 4×4 and
/// 8×8 levels (1280 and 2560 channels, 16 and 64 positions) costs as much as the product. The gradients are libtorch's
/// (bit for bit on an AMD EPYC Zen 4). A parameter's gradient is stored in its <c>.grad</c> here rather than returned through libtorch, whose
/// <c>AccumulateGrad</c> would store a copy of it (<see cref="ReturnedGradients.ForLeaf"/>).
/// </remarks>
internal sealed class TrainingConvolutionFunction : autograd.SingleTensorFunction<TrainingConvolutionFunction>
{
    private const string HasBiasKey = "bias";

    // From this many positions the forward and the input's gradient are by Winograd: at 16×16, 640 → 640 channels took
    // 1.15× libtorch's time (docs/performance.md, seventeenth session).
    private const long WinogradPositions = 32 * 32;

    // From this many positions over the batch the weight's gradient is made by Winograd (WinogradConvolution.WeightGradient):
    // its 16 products have one term per 2×2 tile, and with fewer tiles their C_out × C_in sums and the transforms of them
    // cost more than they save. The whole backward on an AMD EPYC Zen 4, batch 1: 0.78–0.81× im2col's at 64×64 (320 → 320,
    // 640 → 640, 960 → 320), 1.03× at 32×32 for 320 → 320 and 1.32× for 1280 → 640 (docs/performance.md).
    private const long WinogradWeightGradientPositions = 64 * 64;

    // Otherwise the weight's gradient is made this many input channels' columns at a time: at most 16 MiB of im2col columns beside
    // the activations (a 640-channel input at 64×64 would need 94 MB whole).
    private const long ColumnBytes = 16L << 20;

    /// <inheritdoc />
    public override string Name => nameof(TrainingConvolutionFunction);

    /// <summary>
    /// Whether a training convolution should run here: float32 CPU tensors, a contiguous input, a [C_out, C_in, 3, 3]
    /// contiguous weight with both channel counts multiples of 16, stride 1 and padding 1, under AMD's rules
    /// (<see cref="InferenceKernels.AmdRules"/>) with AVX-512 and oneDNN off, as training runs SD 1.5 there. Forward and backward at batch 1 against libtorch's own convolution
    /// (oneDNN off, its GEMMs on brgemm), AMD EPYC Zen 4, one process, medians of six or seven interleaved
    /// (docs/performance.md): 0.56–0.60× its time at 64×64 for 320–960 → 320 channels, 0.73× for 640 → 640; 0.76–0.91×
    /// at 32×32 (the tiled path 0.66–0.71× of that); 0.96–0.97× at 16×16 (the tiled path 0.61–0.78× of that) and 8×8, and
    /// 0.87–0.89× at 4×4 for 1280 → 1280 and 2560 → 1280.
    /// </summary>
    public static bool AppliesToTraining(Tensor input, Tensor weight, Tensor? bias, IReadOnlyList<long> stride, IReadOnlyList<long> padding)
    {
        if (!InferenceKernels.AmdRules || OneDnn.Enabled || stride is not [1, 1] || padding is not [1, 1]) return false;
        return WinogradConvolution.FitsTensors(input, weight, bias) && input.is_contiguous() && weight.is_contiguous();
    }

    /// <summary><paramref name="input"/> convolved by <paramref name="weight"/>, plus <paramref name="bias"/>.</summary>
    public static Tensor Convolve(Tensor input, Tensor weight, Tensor? bias) => apply(input, weight, bias!);

    /// <inheritdoc />
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ReturnedGradients.Release();
        Tensor input = (Tensor)vars[0], weight = (Tensor)vars[1];
        var bias = vars[2] as Tensor;
        ctx.save_for_backward([input, weight]);
        ctx.save_data(HasBiasKey, bias is { requires_grad: true });
        if (ByTiles(input, weight)) return WinogradConvolution.ConvolveForTraining(input, weight, bias);
        if (ByWinograd(input)) return WinogradConvolution.ConvolvePlain(input, weight, bias);
        using var noGrad = torch.no_grad();
        return nn.functional.conv2d(input, weight, bias, padding: [1, 1]);
    }

    /// <inheritdoc />
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        ReturnedGradients.Release();
        bool biasGrad = (bool)ctx.get_data(HasBiasKey);
        Tensor? gradInput = null, gradWeight = null, gradBias = null;
        using (torch.NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            Tensor input = saved[0], weight = saved[1];
            var upstream = gradOutput.is_contiguous() ? gradOutput : gradOutput.contiguous();
            bool byTiles = ByTiles(input, weight);
            if (input.requires_grad)
            {
                if (byTiles) gradInput = WinogradConvolution.InputGradientForTraining(upstream, weight);
                else if (ByWinograd(input))
                {
                    using var flipped = weight.flip(2, 3).transpose(0, 1).contiguous();
                    gradInput = WinogradConvolution.ConvolvePlain(upstream, flipped, null);
                }
                else
                {
                    using var noGrad = torch.no_grad();
                    gradInput = nn.functional.conv_transpose2d(upstream, weight, padding: [1, 1]);
                }
                gradInput.DetachFromDisposeScope();
            }
            if (weight.requires_grad)
            {
                gradWeight = byTiles ? WinogradConvolution.WeightGradientForTraining(input, upstream)
                    : input.shape[0] * input.shape[2] * input.shape[3] >= WinogradWeightGradientPositions
                    ? WinogradConvolution.WeightGradient(input, upstream)
                    : Im2colWeightGradient(input, upstream, weight.shape);
                gradWeight.DetachFromDisposeScope();
                gradWeight = ReturnedGradients.ForLeaf(weight, gradWeight);
            }
            if (biasGrad) gradBias = upstream.sum([0, 2, 3]).DetachFromDisposeScope();
        }
        SavedTensors.Release(ctx);
        // The handle TorchSharp made for this callback; libtorch keeps its own reference.
        gradOutput.Dispose();
        return [ReturnedGradients.Hold(gradInput)!, gradWeight!, ReturnedGradients.Hold(gradBias)!];
    }

    private static bool ByWinograd(Tensor input) => input.shape[2] * input.shape[3] >= WinogradPositions;

    // All three products by Winograd with the batch's tiles in one chunk (WinogradConvolution.ConvolveForTraining and the
    // two gradients) where the tiles fit; the paths above are for larger inputs (512 px's 64×64 level beyond 640 channels).
    private static bool ByTiles(Tensor input, Tensor weight) =>
        TilesEnabled && input.shape[2] * input.shape[3] >= TilesPositions && WinogradConvolution.TrainingFits(input, weight.shape[0]);

    // From this many positions: forward and backward of a layer at batch 1, AMD EPYC Zen 4, against the paths above
    // (docs/performance.md, twentieth session): 0.61–0.78× at 16×16, 0.66–0.71× at 32×32, 0.95× for 320 → 320 at 64×64.
    // At 8×8 (16 tiles an image) 0.64–1.1× per layer with the twenty-first session's faster weight transform, but 1.02× of
    // the whole step, alone or for the backward only: the forward reads each weight from memory for few products.
    private const long TilesPositions = 16 * 16;

    /// <summary>Whether <see cref="ByTiles"/> may choose the tiled path: the tests turn it off to reach the other paths.</summary>
    internal static bool TilesEnabled { get; set; } = true;

    // Σ over the batch of gradOutput[b] [C_out, H·W] · im2col(input[b])ᵀ [H·W, C_in·9], a block of input channels at a time;
    // the first image's product is written into the gradient (β = 0), not added to zeros.
    private static Tensor Im2colWeightGradient(Tensor input, Tensor gradOutput, long[] weightShape)
    {
        long batch = input.shape[0], cin = input.shape[1], positions = input.shape[2] * input.shape[3], cout = weightShape[0];
        var gradWeight = empty([cout, cin * 9], ScalarType.Float32);
        long channels = Math.Clamp(ColumnBytes / (9 * positions * sizeof(float)), 1, cin);
        for (long b = 0; b < batch; b++)
        {
            using var scope = torch.NewDisposeScope();
            var upstream = gradOutput[b].view(cout, positions);
            for (long c0 = 0; c0 < cin; c0 += channels)
            {
                long count = Math.Min(channels, cin - c0);
                var columns = nn.functional.unfold(input.narrow(0, b, 1).narrow(1, c0, count), 3, padding: 1).view(count * 9, positions);
                gradWeight.narrow(1, c0 * 9, count * 9).addmm_(upstream, columns.t(), beta: b == 0 ? 0 : 1);
            }
        }
        return gradWeight.view(weightShape);
    }
}
