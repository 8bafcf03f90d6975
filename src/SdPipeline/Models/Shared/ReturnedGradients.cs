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

    /// <summary>Releases the handles of gradients that earlier callbacks on this thread returned to libtorch.</summary>
    public static void Release()
    {
        var queue = t_returned;
        if (queue is null) return;
        while (queue.TryDequeue(out var gradient)) gradient.Dispose();
    }
}
