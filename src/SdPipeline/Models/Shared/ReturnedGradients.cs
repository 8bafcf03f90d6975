using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>
/// The managed handles of gradients that a custom autograd function's backward returned to libtorch. libtorch copies
/// the returned tensors (adding its own reference) only after backward returns, so their handles cannot be disposed
/// inside it, and must not wait for the GC either: each holds an activation-sized gradient. They are released at the
/// function's next callback on the same thread, after libtorch has taken its copy (per thread, because CUDA's backward
/// runs on libtorch's device threads, concurrently with the CPU's).
/// </summary>
internal static class ReturnedGradients
{
    [ThreadStatic] private static Queue<Tensor>? t_returned;

    /// <summary>Keeps <paramref name="gradient"/>'s handle until <see cref="Release"/>; returns it.</summary>
    public static Tensor? Hold(Tensor? gradient)
    {
        if (gradient is not null) (t_returned ??= new Queue<Tensor>()).Enqueue(gradient);
        return gradient;
    }

    /// <summary>
    /// A leaf's gradient (a parameter's, as the training convolution's weight is): stored in the leaf's <c>.grad</c> here,
    /// or added to it, and null returned for libtorch. Returned through libtorch, it would reach the leaf's
    /// <c>AccumulateGrad</c> while <see cref="Hold"/>'s handle still references it, and <c>AccumulateGrad</c> stores a copy of
    /// a gradient that anything else references: a pass over every such weight a step (SD 1.5's convolutions at 4×4 to 16×16
    /// are 1280 and 2560 channels wide). Any other tensor (a weight computed from a parameter, as a fused backward pass or
    /// LoRA makes it) gets its gradient through libtorch, held as <see cref="Hold"/> does.
    /// </summary>
    public static Tensor? ForLeaf(Tensor input, Tensor? gradient)
    {
        if (gradient is null || !input.is_leaf || torch.is_grad_enabled()) return Hold(gradient);
        if (input.grad is { } existing) existing.add_(gradient);
        else input.grad = gradient; // .grad takes its own reference
        gradient.Dispose();
        return null;
    }

    /// <summary>Releases the handles of gradients that earlier callbacks on this thread returned to libtorch.</summary>
    public static void Release()
    {
        var queue = t_returned;
        if (queue is null) return;
        while (queue.TryDequeue(out var gradient)) gradient.Dispose();
    }
}
