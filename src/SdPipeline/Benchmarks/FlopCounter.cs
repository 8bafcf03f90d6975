using SdPipeline.Models.Shared;
using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Benchmarks;

/// <summary>
/// Counts a model's FLOPs from the shapes its layers see in a forward pass, the way PyTorch's
/// <c>torch.utils.flop_counter.FlopCounterMode</c> counts them: 2 FLOPs per multiply-add in convolutions, linear layers
/// and the two attention matmuls; norms, activations, adds, softmax and bias adds count 0. Forward hooks on every
/// convolution (<see cref="Convolution"/>, <see cref="AutocastConv2d"/>), linear layer (<see cref="Linear"/>,
/// <see cref="AutocastLinear"/>) and <see cref="Attention"/> record each call while attached.
/// </summary>
/// <remarks>
/// <para>Backward, per call made with autograd on: a convolution or linear layer costs its forward once for the
/// grad-weight (when the weight requires grad) and once for the grad-input (when its input requires grad). So, as in
/// PyTorch, <c>conv_in</c>'s grad-input, <c>to_k</c>/<c>to_v</c> over the text embeddings and the first time-embedding
/// linear cost 1× forward in backward, not 2×. Attention backward is 2× its forward: the four matmuls of the plain
/// (bmm + softmax) path. PyTorch's counter gives fused SDPA kernels 2.5× (they recompute the scores); the reference
/// numbers in docs were taken on the plain path, so this counter matches those. A call made under <c>no_grad</c> has
/// no backward (0).</para>
/// <para>Count without gradient checkpointing: a recomputed forward would fire the hooks again.</para>
/// <para>libtorch has no meta kernels for convolution, group norm or SDPA, so shapes cannot be propagated on the meta
/// device. Instead, <c>shapesOnly</c> makes every convolution, linear layer and attention compute on a one-pixel /
/// one-token sliver of its input and return zeros of the real output shape, counted from the real shapes: the count
/// equals a real forward's while only the memory-bound layers (norms, activations, adds) run at full size. The
/// parameters must have real storage (a model built on meta and given storage by <see cref="MetaModules.ToEmpty"/> is
/// enough: the values are never used) and are read once per call.</para>
/// </remarks>
public sealed class FlopCounter : IDisposable
{
    private readonly List<FlopRecord> _records = [];
    private readonly List<Action> _removeHooks = [];
    private readonly bool _shapesOnly;
    private int _silenced;

    private FlopCounter(bool shapesOnly) => _shapesOnly = shapesOnly;

    /// <summary>Whether convolutions, linear layers and attention skip their arithmetic (see the remarks).</summary>
    public bool ShapesOnly => _shapesOnly;

    /// <summary>Every counted call since attaching (or <see cref="Reset"/>), in call order.</summary>
    public IReadOnlyList<FlopRecord> Records => _records;

    /// <summary>The sum of <see cref="Records"/>.</summary>
    public FlopCount Total => FlopCount.Of(_records);

    /// <summary>Forgets the calls counted so far.</summary>
    public void Reset()
    {
        _records.Clear();
        _silenced = 0; // in case a forward threw inside an attention
    }

    /// <summary>Hooks every convolution, linear layer and attention of <paramref name="model"/> until the counter is disposed.</summary>
    /// <param name="model">The model.</param>
    /// <param name="shapesOnly">Skip the arithmetic of convolutions, linear layers and attention (outputs become zeros of the right shape).</param>
    /// <exception cref="NotSupportedException">The model holds a transposed or dilated-padding-'same' convolution (not counted by this class).</exception>
    public static FlopCounter Attach(nn.Module model, bool shapesOnly = false)
    {
        var counter = new FlopCounter(shapesOnly);
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        try
        {
            foreach (var (name, module) in model.named_modules().Prepend((string.Empty, model)))
            {
                if (!seen.Add(module)) continue;
                switch (module)
                {
                    case Convolution convolution: counter.Hook(name, convolution, ConvGeometry.Of(name, convolution)); break;
                    case AutocastConv2d convolution: counter.Hook(name, convolution, ConvGeometry.Of(convolution)); break;
                    case Linear linear: counter.Hook(name, linear, new LinearGeometry(linear.weight, linear.bias, linear.in_features, linear.out_features)); break;
                    case AutocastLinear linear: counter.Hook(name, linear, new LinearGeometry(linear.weight, linear.bias, linear.InFeatures, linear.OutFeatures)); break;
                    case Attention attention: counter.Hook(name, attention); break;
                }
            }
        }
        catch
        {
            counter.Dispose();
            throw;
        }
        return counter;
    }

    /// <summary>Runs <paramref name="forward"/> once with a counter attached and returns what it counted.</summary>
    public static FlopCount Count(nn.Module model, Action forward, bool shapesOnly = false)
    {
        using var counter = Attach(model, shapesOnly);
        forward();
        return counter.Total;
    }

    /// <summary>Convolution FLOPs: 2 · N · prod(weight shape) · prod(output spatial), weight [C_out, C_in/groups, k…].</summary>
    public static double ConvolutionFlops(long[] weightShape, long[] outputShape) =>
        2.0 * outputShape[0] * Product(weightShape) * Product(outputShape.AsSpan(2));

    /// <summary>Linear FLOPs: 2 · tokens · in · out.</summary>
    public static double LinearFlops(long tokens, long inFeatures, long outFeatures) => 2.0 * tokens * inFeatures * outFeatures;

    /// <summary>Attention FLOPs: scores (Q·Kᵀ) and values (P·V), each 2 · B · heads · L_q · L_k · head_dim.</summary>
    public static double AttentionFlops(long batch, long heads, long queryLength, long keyLength, long headDim) =>
        2 * 2.0 * batch * heads * queryLength * keyLength * headDim;

    /// <summary>Removes the hooks.</summary>
    public void Dispose()
    {
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
    }

    private void Hook(string name, nn.Module<Tensor, Tensor> convolution, ConvGeometry geometry)
    {
        long[] inputShape = [];
        bool inputGrad = false;
        _removeHooks.Add(convolution.register_forward_pre_hook((_, input) =>
        {
            inputShape = input.shape;
            inputGrad = input.requires_grad;
            if (!_shapesOnly) return input;
            // A sliver just big enough for one output position (usually one pixel, thanks to the padding): the real
            // output shape is computed, not produced. Small inputs also keep libtorch off oneDNN, whose per-call
            // weight reordering would cost more than the arithmetic saved.
            var sliver = input.narrow(0, 0, 1);
            for (int i = 0; i < input.dim() - 2; i++)
            {
                long needed = Math.Max(1, geometry.KernelExtent(i) - 2 * geometry.Padding[i]);
                sliver = sliver.narrow(i + 2, 0, Math.Min(input.shape[i + 2], needed));
            }
            return sliver;
        }).remove);
        _removeHooks.Add(convolution.register_forward_hook((_, _, output) =>
        {
            long[] outputShape = geometry.OutputShape(inputShape);
            if (!_shapesOnly && !outputShape.AsSpan().SequenceEqual(output.shape))
                throw new InvalidOperationException(
                    $"{name}: the convolution output shape [{string.Join(", ", output.shape)}] differs from the computed [{string.Join(", ", outputShape)}]");
            double forward = ConvolutionFlops(geometry.Weight.shape, outputShape);
            _records.Add(new FlopRecord(name, FlopOp.Convolution, inputShape, outputShape, forward, forward * BackwardPasses(inputGrad, geometry.Weight)));
            return _shapesOnly ? Placeholder(outputShape, output, inputGrad || NeedsGrad(geometry.Weight, geometry.Bias)) : output;
        }).remove);
    }

    private void Hook(string name, nn.Module<Tensor, Tensor> linear, LinearGeometry geometry)
    {
        long[] inputShape = [];
        bool inputGrad = false;
        _removeHooks.Add(linear.register_forward_pre_hook((_, input) =>
        {
            inputShape = input.shape;
            inputGrad = input.requires_grad;
            return _shapesOnly ? Sliver(input, (int)input.dim() - 1) : input;
        }).remove);
        _removeHooks.Add(linear.register_forward_hook((_, _, output) =>
        {
            // Inside a shrunk attention the projections see one token; the attention's hook counts them instead.
            long[] outputShape = _silenced > 0 ? [.. inputShape[..^1], geometry.OutFeatures] : RecordLinear(name, geometry, inputShape, inputGrad);
            return _shapesOnly ? Placeholder(outputShape, output, inputGrad || NeedsGrad(geometry.Weight, geometry.Bias)) : output;
        }).remove);
    }

    private void Hook(string name, Attention attention)
    {
        var modules = attention.named_modules().ToDictionary(m => m.name, m => m.module);
        LinearGeometry Projection(string key) => modules.GetValueOrDefault(key) switch
        {
            AutocastLinear linear => new LinearGeometry(linear.weight, linear.bias, linear.InFeatures, linear.OutFeatures),
            Linear linear => new LinearGeometry(linear.weight, linear.bias, linear.in_features, linear.out_features),
            _ => throw new NotSupportedException($"{name}: an {nameof(Attention)} without a linear {key} cannot be counted"),
        };
        LinearGeometry toQ = Projection("to_q"), toK = Projection("to_k"), toV = Projection("to_v"), toOut = Projection("to_out.0");
        bool normTrains = modules.GetValueOrDefault("group_norm")?.parameters().Any(p => p.requires_grad) == true;

        long[] hiddenShape = [];
        long[]? contextShape = null;
        bool hiddenGrad = false, contextGrad = false;
        void Observe(Tensor hiddenStates, Tensor? encoderHiddenStates)
        {
            hiddenShape = hiddenStates.shape;
            contextShape = encoderHiddenStates?.shape;
            hiddenGrad = hiddenStates.requires_grad;
            contextGrad = encoderHiddenStates?.requires_grad == true;
        }

        if (_shapesOnly)
        {
            // Attention runs on one token (one pixel for the VAE's [B, C, H, W]); its projections and matmuls are
            // counted from the real shapes in the hook below, and its output becomes zeros of the real shape.
            _removeHooks.Add(attention.register_forward_pre_hook((_, hiddenStates, encoderHiddenStates) =>
            {
                Observe(hiddenStates, encoderHiddenStates);
                _silenced++;
                var hiddenSliver = hiddenStates.dim() == 4 ? hiddenStates.narrow(0, 0, 1).narrow(2, 0, 1).narrow(3, 0, 1) : Sliver(hiddenStates, 2);
                return (hiddenSliver, encoderHiddenStates is null ? null : Sliver(encoderHiddenStates, 2));
            }).remove);
        }
        _removeHooks.Add(attention.register_forward_hook((_, hiddenStates, encoderHiddenStates, output) =>
        {
            if (_shapesOnly) _silenced--;
            else Observe(hiddenStates, encoderHiddenStates);

            long batch = hiddenShape[0];
            // [B, C, H, W] (the VAE) attends over its pixels; [B, N, C] over its tokens.
            long queryLength = hiddenShape.Length == 4 ? hiddenShape[2] * hiddenShape[3] : hiddenShape[1];
            long keyLength = contextShape?[1] ?? queryLength;
            bool queryInputGrad = hiddenGrad || normTrains;
            bool keyInputGrad = contextShape is null ? queryInputGrad : contextGrad;
            bool attendedGrad = queryInputGrad || keyInputGrad || NeedsGrad(toQ.Weight, toQ.Bias) || NeedsGrad(toK.Weight, toK.Bias) || NeedsGrad(toV.Weight, toV.Bias);
            if (_shapesOnly)
            {
                RecordLinear($"{name}.to_q", toQ, [batch, queryLength, toQ.InFeatures], queryInputGrad);
                RecordLinear($"{name}.to_k", toK, [batch, keyLength, toK.InFeatures], keyInputGrad);
                RecordLinear($"{name}.to_v", toV, [batch, keyLength, toV.InFeatures], keyInputGrad);
            }
            long heads = attention.Heads, headDim = toQ.OutFeatures / heads;
            double forward = AttentionFlops(batch, heads, queryLength, keyLength, headDim);
            double backward = torch.is_grad_enabled() && attendedGrad ? 2 * forward : 0;
            _records.Add(new FlopRecord(name, FlopOp.Attention, hiddenShape, [batch, heads, queryLength, keyLength], forward, backward));
            if (!_shapesOnly) return output;
            RecordLinear($"{name}.to_out.0", toOut, [batch, queryLength, toOut.InFeatures], attendedGrad);
            return Placeholder(hiddenShape, output, attendedGrad || hiddenGrad || NeedsGrad(toOut.Weight, toOut.Bias));
        }).remove);
    }

    private long[] RecordLinear(string name, LinearGeometry linear, long[] inputShape, bool inputGrad)
    {
        long[] outputShape = [.. inputShape[..^1], linear.OutFeatures];
        long tokens = Product(inputShape.AsSpan(0, inputShape.Length - 1));
        double forward = LinearFlops(tokens, linear.InFeatures, linear.OutFeatures);
        _records.Add(new FlopRecord(name, FlopOp.Linear, inputShape, outputShape, forward, forward * BackwardPasses(inputGrad, linear.Weight)));
        return outputShape;
    }

    // The first element of each of the first `dims` dimensions: a view, no copy.
    private static Tensor Sliver(Tensor input, int dims)
    {
        var sliver = input;
        for (int i = 0; i < dims; i++) sliver = sliver.narrow(i, 0, Math.Min(1, input.shape[i]));
        return sliver;
    }

    // Grad-weight when the weight trains, grad-input when the input needs a gradient; nothing without autograd.
    private static int BackwardPasses(bool inputGrad, Parameter weight) =>
        torch.is_grad_enabled() ? (inputGrad ? 1 : 0) + (weight.requires_grad ? 1 : 0) : 0;

    private static bool NeedsGrad(Parameter weight, Parameter? bias) => weight.requires_grad || bias?.requires_grad == true;

    private static Tensor Placeholder(long[] shape, Tensor like, bool needsGrad) =>
        torch.zeros(shape, like.dtype, like.device, requires_grad: needsGrad && torch.is_grad_enabled());

    // What the count needs of a convolution, from TorchSharp's Convolution or the models' AutocastConv2d alike.
    private sealed record ConvGeometry(Parameter Weight, Parameter? Bias, long OutChannels, long[] Stride, long[] Padding, long[] Dilation, long[] Kernel, bool Same)
    {
        public static ConvGeometry Of(string name, Convolution convolution)
        {
            if (convolution.transposed)
                throw new NotSupportedException($"{name}: transposed convolutions are not counted by {nameof(FlopCounter)}");
            int dims = convolution.kernel_size.Length;
            // Explicit padding per side ('same' is handled in OutputShape; 'valid' is none).
            long[] padding = Enumerable.Range(0, dims)
                .Select(i => convolution.padding_type is null && convolution.padding is { } p ? p[i] : 0).ToArray();
            return new ConvGeometry(convolution.weight, convolution.bias, convolution.out_channels, convolution.stride, padding,
                convolution.dilation, convolution.kernel_size, convolution.padding_type == TorchSharp.Padding.Same);
        }

        public static ConvGeometry Of(AutocastConv2d convolution) =>
            new(convolution.weight, convolution.bias, convolution.OutChannels, [.. convolution.Stride], [.. convolution.Padding], [1, 1], [.. convolution.KernelSize], false);

        public long KernelExtent(int dim) => Dilation[dim] * (Kernel[dim] - 1) + 1;

        public long[] OutputShape(long[] inputShape)
        {
            var shape = new long[inputShape.Length];
            shape[0] = inputShape[0];
            shape[1] = OutChannels;
            for (int i = 0; i < inputShape.Length - 2; i++)
                // PyTorch allows 'same' only with stride 1
                shape[i + 2] = Same ? inputShape[i + 2] : (inputShape[i + 2] + 2 * Padding[i] - KernelExtent(i)) / Stride[i] + 1;
            return shape;
        }
    }

    private sealed record LinearGeometry(Parameter Weight, Parameter? Bias, long InFeatures, long OutFeatures);

    private static long Product(ReadOnlySpan<long> values)
    {
        long product = 1;
        foreach (long value in values) product *= value;
        return product;
    }
}
