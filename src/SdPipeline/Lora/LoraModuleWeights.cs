using static TorchSharp.torch;

namespace SdPipeline.Lora;

/// <summary>The LoRA of one layer as stored in a file, whatever the layout.</summary>
/// <param name="Component"><c>unet</c> or <c>text_encoder</c>.</param>
/// <param name="Path">The layer's module path inside the component, in diffusers/transformers naming (<c>down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q</c>).</param>
/// <param name="Down">lora_A / lora_down weight.</param>
/// <param name="Up">lora_B / lora_up weight.</param>
/// <param name="Alpha">lora_alpha (the rank when the file stores none).</param>
public sealed record LoraModuleWeights(string Component, string Path, Tensor Down, Tensor Up, double Alpha)
{
    /// <summary>r.</summary>
    public int Rank => (int)Down.shape[0];
}
