using static TorchSharp.torch;

namespace SdPipeline.Training.Precision;

/// <summary>
/// A thread-scoped autocast region, TorchSharp's missing <c>torch.autocast</c>:
/// <code>using (Autocast.Enter(ScalarType.Float16)) { var prediction = unet.call(...); }</code>
/// Inside it the models' layers run their matrix multiplies and convolutions in the region's dtype and their
/// normalisations in float32 (the policy is <see cref="AutocastOps"/>); outside it, and inside
/// <c>Autocast.Enter(null)</c>, every layer runs in the dtype of its inputs, bit for bit as without this class.
/// </summary>
/// <remarks>
/// <para>
/// Why thread-scoped: like torch's autocast state it is per thread, so a region on the training thread does not
/// leak into another thread (a data loader, a sampler running beside it). The backward pass may run on another
/// thread (libtorch runs CUDA backward on its device threads), so code that recomputes a forward in backward
/// (gradient checkpointing) captures <see cref="Current"/> and enters it again there.
/// </para>
/// <para>
/// Regions nest (an inner <c>Enter(null)</c> turns autocast off, an inner dtype replaces the outer one) and must be
/// left in reverse order on the thread that entered them; leaving one out of order is a programming error and
/// throws rather than silently leaving the thread in the wrong precision.
/// </para>
/// <para>
/// Unlike torch, a region applies to tensors on every device: a training process computes on one device. There is
/// no cache of weight casts (torch keeps one per region): each UNet weight is used once per forward, so a cache
/// saves no casts within a forward, while it would keep a half-precision copy of every weight alive for the whole
/// region (2 bytes per parameter; 1.7 GB for SD 1.5), including inside checkpointed blocks whose forward
/// must keep nothing. With gradients on, autograd keeps each cast weight until backward anyway, because the
/// matrix multiply needs it to compute its input's gradient.
/// </para>
/// </remarks>
public static class Autocast
{
    [ThreadStatic] private static ScalarType? _current;
    [ThreadStatic] private static Region? _innermost;

    /// <summary>The compute dtype of the innermost region on this thread; null when autocast is off.</summary>
    public static ScalarType? Current => _current;

    /// <summary>
    /// Enters a region in which matrix multiplies and convolutions run in <paramref name="dtype"/>; null enters a
    /// region with autocast off (torch's <c>autocast(enabled=False)</c>). Dispose the result to leave it.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="dtype"/> is neither float16, bfloat16 nor null.</exception>
    public static IDisposable Enter(ScalarType? dtype)
    {
        if (dtype is not (null or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"autocast computes in float16 or bfloat16 (or null for off), not {dtype}", nameof(dtype));
        var region = new Region(_current, _innermost, Environment.CurrentManagedThreadId);
        _current = dtype;
        _innermost = region;
        return region;
    }

    private sealed class Region(ScalarType? previous, Region? outer, int threadId) : IDisposable
    {
        private bool _left;

        public void Dispose()
        {
            if (_left) return;
            if (Environment.CurrentManagedThreadId != threadId)
                throw new InvalidOperationException("an autocast region must be left on the thread that entered it");
            if (!ReferenceEquals(_innermost, this))
                throw new InvalidOperationException("autocast regions must be left in reverse order of entering (an inner region is still open)");
            _current = previous;
            _innermost = outer;
            _left = true;
        }
    }
}
