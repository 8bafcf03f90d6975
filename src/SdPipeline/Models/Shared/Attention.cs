using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// Multi-head attention through <c>scaled_dot_product_attention</c> (on long sequences, <see cref="AttentionKernel"/> in
/// inference and, on AMD's CPUs, <see cref="AttentionFunction"/> in training): self-attention, or cross-attention over <c>encoder_hidden_states</c>. The VAE's
/// variant takes [B, C, H, W] input, normalises it with its own GroupNorm and adds the input back
/// (<c>residual_connection</c>).
/// </summary>
/// <remarks>Mirrors diffusers.models.attention_processor.Attention with AttnProcessor2_0 (no masks, no added KV).</remarks>
public sealed class Attention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? group_norm;
    private readonly nn.Module<Tensor, Tensor> to_q;
    private readonly nn.Module<Tensor, Tensor> to_k;
    private readonly nn.Module<Tensor, Tensor> to_v;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> to_out;

    private readonly long _heads;
    private readonly bool _upcast;
    private readonly bool _residualConnection;
    private readonly double _rescaleOutputFactor;

    /// <summary>Number of heads.</summary>
    public long Heads => _heads;

    /// <summary>Creates the layer.</summary>
    /// <param name="queryDim">Width of the attending hidden states.</param>
    /// <param name="crossAttentionDim">Width of the attended states for cross-attention; null = self-attention.</param>
    /// <param name="heads">Number of heads.</param>
    /// <param name="dimHead">Width of one head.</param>
    /// <param name="bias">Whether <c>to_q</c>/<c>to_k</c>/<c>to_v</c> have biases (UNet: no; VAE: yes). <c>to_out.0</c> always has one.</param>
    /// <param name="upcast">
    /// Compute the attention in float32 when the inputs are half precision, as diffusers' classic processor does
    /// for <c>upcast_attention</c> / <c>upcast_softmax</c> (its default SDPA processor ignores both). No effect in float32.
    /// </param>
    /// <param name="normNumGroups">Groups of a GroupNorm applied to the input first (the VAE), or null.</param>
    /// <param name="eps">That GroupNorm's epsilon.</param>
    /// <param name="residualConnection">Add the input to the output (the VAE).</param>
    /// <param name="rescaleOutputFactor">The output is divided by it.</param>
    /// <param name="device">Where to create the parameters.</param>
    public Attention(long queryDim, long? crossAttentionDim, long heads, long dimHead, bool bias, bool upcast,
        long? normNumGroups = null, double eps = 1e-5, bool residualConnection = false, double rescaleOutputFactor = 1.0,
        Device? device = null) : base(nameof(Attention))
    {
        long innerDim = heads * dimHead;
        long contextDim = crossAttentionDim ?? queryDim;
        if (normNumGroups is long groups) group_norm = Norms.GroupNorm(groups, queryDim, eps, device);
        to_q = nn.Linear(queryDim, innerDim, hasBias: bias, device: device);
        to_k = nn.Linear(contextDim, innerDim, hasBias: bias, device: device);
        to_v = nn.Linear(contextDim, innerDim, hasBias: bias, device: device);
        // to_out.1 is diffusers' Dropout(0.0): kept so that the output projection is key "to_out.0".
        to_out = nn.ModuleList<nn.Module<Tensor, Tensor>>(nn.Linear(innerDim, queryDim, hasBias: true, device: device), nn.Dropout(0.0));
        _heads = heads;
        _upcast = upcast;
        _residualConnection = residualConnection;
        _rescaleOutputFactor = rescaleOutputFactor;
        RegisterComponents();
    }

    /// <summary>
    /// Attends <paramref name="hiddenStates"/> ([B, N, C], or [B, C, H, W] for the VAE) to
    /// <paramref name="encoderHiddenStates"/> [B, M, D], or to itself when that is null.
    /// </summary>
    public override Tensor forward(Tensor hiddenStates, Tensor? encoderHiddenStates)
    {
        using var scope = NewDisposeScope(); // frees the intermediates on return (docs/performance.md, memory)
        var residual = hiddenStates;
        long[] spatial = hiddenStates.shape;
        bool image = hiddenStates.dim() == 4;
        if (image) hiddenStates = hiddenStates.view(spatial[0], spatial[1], spatial[2] * spatial[3]).transpose(1, 2);

        bool inference = this.InInference();
        if (group_norm is not null)
            hiddenStates = Norms.Apply(group_norm, hiddenStates.transpose(1, 2), inference).transpose(1, 2);

        var context = encoderHiddenStates ?? hiddenStates;
        var query = Linears.Apply(to_q, hiddenStates, inference);
        var key = Linears.Apply(to_k, context, inference);
        var value = Linears.Apply(to_v, context, inference);

        // A module in training mode takes the training kernel (or libtorch's) whether or not gradients are recorded, so
        // that gradient checkpointing's no-grad first pass and its recomputation in backward run the same arithmetic.
        if (training)
        {
            hiddenStates = InferenceKernels.Enabled && AttentionKernel.AppliesToTraining(query, key, value, _heads)
                ? AttentionFunction.Attend(query, key, value, _heads)
                : Attend(AttentionPath.ScaledDotProduct, query, key, value, scope);
        }
        else
        {
            var path = InferenceKernels.Enabled && AttentionKernel.Applies(query, key, value, _heads) ? AttentionPath.Kernel : AttentionPath.ScaledDotProduct;
            if (KernelChoices.Watched) KernelChoices.Report(new AttentionCall(this, query.shape, key.shape, path));
            hiddenStates = Attend(path, query, key, value, scope);
        }
        // The projections (and the normalised input) are read by nothing else once attended.
        scope.DisposeEverythingBut(hiddenStates);
        hiddenStates = Linears.Apply(to_out[0], hiddenStates, inference);
        scope.DisposeEverythingBut(hiddenStates);

        if (image) hiddenStates = hiddenStates.transpose(-1, -2).reshape(spatial);
        if (_residualConnection) hiddenStates = hiddenStates + residual;
        return scope.MoveToOuter(_rescaleOutputFactor == 1.0 ? hiddenStates : hiddenStates / _rescaleOutputFactor);
    }

    /// <summary>
    /// Every path that can attend these projections ([B, N, H·D], [B, M, H·D]) here: libtorch's, and the kernel where it
    /// applies.
    /// </summary>
    public IReadOnlyList<AttentionPath> Candidates(Tensor query, Tensor key, Tensor value) =>
        AttentionKernel.Applies(query, key, value, _heads) ? [AttentionPath.ScaledDotProduct, AttentionPath.Kernel] : [AttentionPath.ScaledDotProduct];

    /// <summary>The projections attended by <paramref name="path"/> (one of <see cref="Candidates"/>), as [B, N, H·D].</summary>
    /// <param name="path">The kernel, or libtorch's.</param>
    /// <param name="query">[B, N, H·D].</param>
    /// <param name="key">[B, M, H·D].</param>
    /// <param name="value">[B, M, H·D].</param>
    /// <param name="scope">When given, everything in it but libtorch's attended values is freed before they are laid out again.</param>
    public Tensor Attend(AttentionPath path, Tensor query, Tensor key, Tensor value, DisposeScope? scope = null)
    {
        // Heads stay side by side in the projections' layout: no transposes before or after.
        if (path == AttentionPath.Kernel) return AttentionKernel.Attend(query, key, value, _heads);
        long batch = query.shape[0], headDim = key.shape[^1] / _heads;
        var attended = ScaledDotProduct(
            query.view(batch, -1, _heads, headDim).transpose(1, 2),
            key.view(batch, -1, _heads, headDim).transpose(1, 2),
            value.view(batch, -1, _heads, headDim).transpose(1, 2));
        scope?.DisposeEverythingBut(attended);
        return attended.transpose(1, 2).reshape(batch, -1, _heads * headDim);
    }

    private Tensor ScaledDotProduct(Tensor query, Tensor key, Tensor value)
    {
        var dtype = query.dtype;
        if (!_upcast || dtype is not (ScalarType.Float16 or ScalarType.BFloat16))
            return nn.functional.scaled_dot_product_attention(query, key, value);
        // diffusers' upcast: float32 attention on half-precision inputs, cast back to their dtype.
        var attended = nn.functional.scaled_dot_product_attention(query.to(ScalarType.Float32), key.to(ScalarType.Float32), value.to(ScalarType.Float32));
        return attended.to(dtype);
    }
}
