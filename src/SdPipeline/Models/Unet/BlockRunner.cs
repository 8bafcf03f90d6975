using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// How the UNet invokes each <see cref="Shared.ResnetBlock2D"/> (condition = time embedding) and each
/// <see cref="Transformer2DModel"/> (condition = text embeddings): the one place where training can wrap the
/// blocks, for example to recompute them in backward (gradient checkpointing) or to change their precision.
/// The default, <see cref="BlockRunners.Direct"/>, just calls the block.
/// </summary>
/// <param name="block">The block; its forward is a pure function of its two inputs and its parameters.</param>
/// <param name="hiddenStates">The feature map [B, C, H, W].</param>
/// <param name="condition">The time embedding [B, T] (resnets) or the text embeddings [B, M, D] (transformers).</param>
public delegate Tensor BlockRunner(nn.Module<Tensor, Tensor?, Tensor> block, Tensor hiddenStates, Tensor? condition);
