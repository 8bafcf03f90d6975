using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Models.Unet;

/// <summary>
/// diffusers' <c>_gradient_checkpointing_func</c>: runs one resnet (condition = time embedding) or transformer
/// (condition = text embeddings) of a UNet block so that backward can recompute it. The model only declares the
/// hook; training supplies the function (<c>Training.Checkpointing.GradientCheckpointing</c>) through
/// <see cref="UNet2DConditionModel.EnableGradientCheckpointing"/>.
/// </summary>
/// <param name="block">The block; its forward is a pure function of its two inputs and its parameters.</param>
/// <param name="hiddenStates">The feature map [B, C, H, W].</param>
/// <param name="condition">The time embedding [B, T] (resnets) or the text embeddings [B, M, D] (transformers).</param>
public delegate Tensor GradientCheckpointingFunction(nn.Module<Tensor, Tensor?, Tensor> block, Tensor hiddenStates, Tensor? condition);
