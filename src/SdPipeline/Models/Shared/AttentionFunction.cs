using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Softmax attention with a gradient by <see cref="AttentionKernel"/>'s training forward and backward: the autograd
/// function <see cref="Attention"/> uses in training where <see cref="AttentionKernel.AppliesToTraining"/>. Arguments of
/// <c>apply</c>: the query, key and value projections ([B, N, H·D], [B, M, H·D], contiguous float32) and the number of
/// heads (a long). Saves the projections, the output and each query's log-sum of weights, as libtorch's flash kernel
/// does.
/// </summary>
internal sealed class AttentionFunction : autograd.SingleTensorFunction<AttentionFunction>
{
    private const string HeadsKey = "heads";

    /// <inheritdoc />
    public override string Name => nameof(AttentionFunction);

    /// <summary>Attends <paramref name="query"/> to <paramref name="key"/> and <paramref name="value"/> over <paramref name="heads"/> heads.</summary>
    public static Tensor Attend(Tensor query, Tensor key, Tensor value, long heads) => apply(query, key, value, heads);

    /// <inheritdoc />
    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        ReturnedGradients.Release();
        Tensor query = (Tensor)vars[0], key = (Tensor)vars[1], value = (Tensor)vars[2];
        long heads = (long)vars[3];
        var (output, logSumExp) = AttentionKernel.AttendForTraining(query, key, value, heads);
        ctx.save_for_backward([query, key, value, output, logSumExp]);
        ctx.save_data(HeadsKey, heads);
        return output;
    }

    /// <inheritdoc />
    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        ReturnedGradients.Release();
        long heads = (long)ctx.get_data(HeadsKey);
        Tensor gradQuery, gradKey, gradValue;
        using (torch.NewDisposeScope())
        {
            var saved = ctx.get_saved_variables();
            var upstream = gradOutput.is_contiguous() ? gradOutput : gradOutput.contiguous();
            (gradQuery, gradKey, gradValue) = AttentionKernel.Backward(saved[0], saved[1], saved[2], saved[3], saved[4], upstream, heads);
            gradQuery.DetachFromDisposeScope();
            gradKey.DetachFromDisposeScope();
            gradValue.DetachFromDisposeScope();
        }
        SavedTensors.Release(ctx);
        // The handle TorchSharp made for this callback; libtorch keeps its own reference.
        gradOutput.Dispose();
        return [ReturnedGradients.Hold(gradQuery)!, ReturnedGradients.Hold(gradKey)!, ReturnedGradients.Hold(gradValue)!, null!];
    }
}
