using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>
/// The autocast policy: the operations whose precision an <see cref="Autocast"/> region decides, mirroring
/// torch.autocast's lists for the operations Stable Diffusion uses. The models' layers call these instead of
/// <c>nn.functional</c> (see Models/Shared/Autocast*.cs).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><b>Half precision</b> (the region's dtype): <see cref="Linear"/>, <see cref="Conv2d"/>,
/// <see cref="MatMul"/>, <see cref="ScaledDotProductAttention"/> — the work that dominates the time and that
/// half-precision kernels (tensor cores) speed up. Floating-point arguments other than float64 are cast on the fly,
/// the weights included: the float32 parameters stay the masters, the cast is an autograd operation whose backward
/// casts the gradient back, so <c>.grad</c> lands on the float32 parameter in float32.</item>
/// <item><b>Float32</b>: <see cref="GroupNorm"/>, <see cref="LayerNorm"/>, <see cref="Softmax"/>,
/// <see cref="MseLoss"/> — reductions whose sums of squares and exponentials overflow or lose too many bits in
/// half precision. Half inputs are upcast and the outputs are float32, as with torch.autocast.</item>
/// <item>Everything else (SiLU, GELU, additions, interpolation, reshapes) runs in its inputs' dtype with PyTorch's
/// type promotion (half + float32 = float32), exactly as under torch.autocast.</item>
/// </list>
/// Outside a region every function here is the plain TorchSharp call with the same arguments, so a model's
/// float32 forward is bit for bit what it was before these layers existed.
/// </remarks>
public static class AutocastOps
{
    /// <summary><c>input · weightᵀ + bias</c>, in the autocast dtype inside a region.</summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias)
    {
        if (Autocast.Current is not ScalarType dtype) return nn.functional.linear(input, weight, bias);
        using var x = Cast.To(input, dtype);
        using var w = Cast.To(weight, dtype);
        using var b = Cast.To(bias, dtype);
        return nn.functional.linear(x.Value!, w.Value!, b.Value);
    }

    /// <summary>A 2-D convolution (dilation 1, one group), in the autocast dtype inside a region.</summary>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, long[] stride, long[] padding)
    {
        if (Autocast.Current is not ScalarType dtype)
            return nn.functional.conv2d(input, weight, bias, stride, padding, [1, 1], 1);
        using var x = Cast.To(input, dtype);
        using var w = Cast.To(weight, dtype);
        using var b = Cast.To(bias, dtype);
        return nn.functional.conv2d(x.Value!, w.Value!, b.Value, stride, padding, [1, 1], 1);
    }

    /// <summary>A matrix product (batched like <c>torch.matmul</c>, so it covers bmm), in the autocast dtype inside a region.</summary>
    public static Tensor MatMul(Tensor input, Tensor other)
    {
        if (Autocast.Current is not ScalarType dtype) return torch.matmul(input, other);
        using var a = Cast.To(input, dtype);
        using var b = Cast.To(other, dtype);
        return torch.matmul(a.Value!, b.Value!);
    }

    /// <summary>
    /// <c>softmax(q·kᵀ/√d)·v</c> in one fused kernel, in the autocast dtype inside a region (the kernels keep their
    /// softmax statistics in float32 internally, which is why torch lists SDPA as safe in half precision).
    /// </summary>
    public static Tensor ScaledDotProductAttention(Tensor query, Tensor key, Tensor value, bool isCausal = false)
    {
        if (Autocast.Current is not ScalarType dtype)
            return nn.functional.scaled_dot_product_attention(query, key, value, is_casual: isCausal);
        using var q = Cast.To(query, dtype);
        using var k = Cast.To(key, dtype);
        using var v = Cast.To(value, dtype);
        return nn.functional.scaled_dot_product_attention(q.Value!, k.Value!, v.Value!, is_casual: isCausal);
    }

    /// <summary>Group normalisation, in float32 inside a region (the output is float32 there).</summary>
    public static Tensor GroupNorm(Tensor input, long numGroups, Tensor? weight, Tensor? bias, double eps)
    {
        if (Autocast.Current is null) return nn.functional.group_norm(input, numGroups, weight, bias, eps);
        using var x = Cast.To(input, ScalarType.Float32);
        using var w = Cast.To(weight, ScalarType.Float32);
        using var b = Cast.To(bias, ScalarType.Float32);
        return nn.functional.group_norm(x.Value!, numGroups, w.Value, b.Value, eps);
    }

    /// <summary>Layer normalisation over the trailing <paramref name="normalizedShape"/>, in float32 inside a region.</summary>
    public static Tensor LayerNorm(Tensor input, long[] normalizedShape, Tensor? weight, Tensor? bias, double eps)
    {
        if (Autocast.Current is null) return nn.functional.layer_norm(input, normalizedShape, weight, bias, eps);
        using var x = Cast.To(input, ScalarType.Float32);
        using var w = Cast.To(weight, ScalarType.Float32);
        using var b = Cast.To(bias, ScalarType.Float32);
        return nn.functional.layer_norm(x.Value!, normalizedShape, w.Value, b.Value, eps);
    }

    /// <summary>Softmax over <paramref name="dim"/>, in float32 inside a region.</summary>
    public static Tensor Softmax(Tensor input, long dim)
    {
        if (Autocast.Current is null) return nn.functional.softmax(input, dim);
        using var x = Cast.To(input, ScalarType.Float32);
        return nn.functional.softmax(x.Value!, dim);
    }

    /// <summary>Mean squared error, in float32 inside a region (diffusers' <c>mse_loss(pred.float(), target.float())</c>).</summary>
    public static Tensor MseLoss(Tensor input, Tensor target, nn.Reduction reduction = nn.Reduction.Mean)
    {
        if (Autocast.Current is null) return nn.functional.mse_loss(input, target, reduction);
        using var x = Cast.To(input, ScalarType.Float32);
        using var y = Cast.To(target, ScalarType.Float32);
        return nn.functional.mse_loss(x.Value!, y.Value!, reduction);
    }

    /// <summary>
    /// A tensor in the wanted dtype that is disposed with the <c>using</c> only when it is a new cast (never the
    /// caller's tensor). Eager disposal matters: the CLIP encoder runs without a dispose scope, and autograd holds
    /// its own reference to every cast it needs for backward.
    /// </summary>
    private readonly struct Cast : IDisposable
    {
        private readonly bool _owned;

        private Cast(Tensor? value, bool owned)
        {
            Value = value;
            _owned = owned;
        }

        public Tensor? Value { get; }

        // torch.autocast's eligibility: floating point, not float64 (an explicit float64 computation is left alone).
        public static Cast To(Tensor? tensor, ScalarType dtype) =>
            tensor is null || tensor.dtype == dtype || !tensor.is_floating_point() || tensor.dtype == ScalarType.Float64
                ? new Cast(tensor, owned: false)
                : new Cast(tensor.to(dtype), owned: true);

        public void Dispose()
        {
            if (_owned) Value!.Dispose();
        }
    }
}
