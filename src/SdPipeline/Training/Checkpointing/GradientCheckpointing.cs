using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Training.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training.Checkpointing;

/// <summary>
/// Gradient checkpointing of the UNet's resnet and transformer blocks, TorchSharp's missing
/// <c>torch.utils.checkpoint</c>: each block's forward keeps only its inputs and output, and backward runs the block
/// again to rebuild the activations it needs. Memory for activations drops from every intermediate of every block
/// to the block boundaries plus one block's intermediates at a time; the price is a second forward of every block.
/// </summary>
/// <remarks>
/// <para>
/// How: <see cref="Apply"/> sets the UNet blocks' <see cref="UNetBlock.GradientCheckpointingFunc"/> (diffusers'
/// <c>_gradient_checkpointing_func</c>), through which they call every resnet and transformer, to <see cref="Checkpoint"/>,
/// which runs the block inside an autograd function (<see cref="CheckpointFunction"/>). Its forward runs without a graph
/// inside a dispose scope, so the activations are freed on return. Its backward re-enters the forward's autocast
/// dtype (captured at forward time: backward may run on another thread, with autocast off), recomputes the block with
/// gradients on, and back-propagates the incoming gradient through it with <c>torch.autograd.backward</c>, which
/// accumulates the block's parameter gradients and yields its inputs' gradients, like PyTorch's reentrant checkpoint.
/// Gradients equal those of the plain forward up to float32 rounding: the recompute is the same computation on the
/// same inputs.
/// </para>
/// <para>
/// An autograd function is only part of the graph when one of its tensor inputs requires a gradient. In full
/// fine-tuning that always holds (the hidden states come out of <c>conv_in</c>, the time embedding out of
/// <c>time_embedding</c>, both trainable). When neither input requires one but the block has trainable parameters
/// (adapters inside frozen blocks), a zero-size "anchor" leaf that requires a gradient is passed as well, so the
/// block's parameters still get their gradients. Without gradients (inference, frozen blocks) the block is called
/// directly.
/// </para>
/// <para>
/// Dropout would draw different masks in the recompute (PyTorch restores the RNG state; this does not):
/// <see cref="Apply"/> refuses a UNet with dropout. Stable Diffusion's UNets use dropout 0.
/// </para>
/// <para>
/// Memory: besides its inputs (shared with the previous block) and output, TorchSharp's autograd function keeps an
/// uninitialised tensor shaped like the output per call until backward (its cache for undefined output gradients);
/// on CPU those pages are never touched, on CUDA the caching allocator holds them.
/// </para>
/// </remarks>
public static class GradientCheckpointing
{
    /// <summary>
    /// Runs <c>block</c> checkpointed (<c>torch.utils.checkpoint.checkpoint</c>): the function <see cref="Apply"/> hands
    /// the UNet when only parameters are trained.
    /// </summary>
    public static GradientCheckpointingFunction Checkpoint { get; } = (block, hiddenStates, condition) => Run(block, hiddenStates, condition, null);

    /// <summary>
    /// Turns checkpointing on for every resnet and transformer block of <paramref name="unet"/>, by handing the UNet
    /// the function its blocks call them through (diffusers' <c>enable_gradient_checkpointing</c>).
    /// </summary>
    /// <param name="unet">The UNet.</param>
    /// <param name="holdsTrainableAdapter">
    /// Whether a block holds trained weights that are not its parameters (LoRA adapters attached by forward hooks);
    /// null when nothing but parameters is trained.
    /// </param>
    /// <exception cref="NotSupportedException">The UNet uses dropout, which a recompute would not reproduce.</exception>
    public static void Apply(UNet2DConditionModel unet, Func<nn.Module, bool>? holdsTrainableAdapter = null)
    {
        if (unet.Config.Dropout > 0)
            throw new NotSupportedException($"gradient checkpointing recomputes blocks in backward and cannot reproduce dropout masks; this UNet has dropout {unet.Config.Dropout} (Stable Diffusion's is 0)");
        unet.EnableGradientCheckpointing(holdsTrainableAdapter is null
            ? Checkpoint
            : (block, hiddenStates, condition) => Run(block, hiddenStates, condition, holdsTrainableAdapter));
    }

    /// <summary>Turns checkpointing off again (blocks run directly).</summary>
    public static void Remove(UNet2DConditionModel unet) => unet.DisableGradientCheckpointing();

    /// <summary>Whether <paramref name="unet"/> currently checkpoints its blocks.</summary>
    public static bool IsApplied(UNet2DConditionModel unet) => unet.IsGradientCheckpointing;

    private static Tensor Run(nn.Module<Tensor, Tensor?, Tensor> block, Tensor hiddenStates, Tensor? condition, Func<nn.Module, bool>? holdsTrainableAdapter)
    {
        ReturnedGradients.Release();
        if (!torch.is_grad_enabled()) return block.call(hiddenStates, condition);
        bool inputsNeedGrad = hiddenStates.requires_grad || condition is { requires_grad: true };
        if (!inputsNeedGrad && !block.parameters().Any(p => p.requires_grad) && holdsTrainableAdapter?.Invoke(block) != true) return block.call(hiddenStates, condition);

        // Everything made in here (the block's activations during the graph-free forward, the anchor) is freed on
        // return; the output leaves the scope, the inputs were made outside it.
        using var scope = torch.NewDisposeScope();
        var anchor = inputsNeedGrad ? null : torch.empty(0, requires_grad: true, device: hiddenStates.device);
        var call = new CheckpointedCall(block, Autocast.Current);
        return CheckpointFunction.apply(hiddenStates, condition!, anchor!, call).MoveToOuterDisposeScope();
    }
}
