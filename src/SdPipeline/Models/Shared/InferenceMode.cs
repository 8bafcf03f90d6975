using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Shared;

/// <summary>The one rule for the models' inference-only paths (GroupNorm kernel, attention kernel, token GEMMs, the channels-last VAE and its Winograd convolutions).</summary>
public static class InferenceMode
{
    /// <summary>
    /// Whether <paramref name="module"/> runs for inference: eval mode with autograd off. A module in training mode keeps
    /// libtorch's kernels even under no_grad, so that gradient checkpointing's no-grad first pass and its recomputation
    /// in backward run the same arithmetic.
    /// </summary>
    public static bool InInference(this nn.Module module) => !module.training && !is_grad_enabled();
}
