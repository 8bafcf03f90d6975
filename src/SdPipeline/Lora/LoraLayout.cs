namespace SdPipeline.Lora;

/// <summary>The key layouts of LoRA files.</summary>
public enum LoraLayout
{
    /// <summary>
    /// diffusers/PEFT (<c>pytorch_lora_weights.safetensors</c>): <c>unet.PATH.lora_A.weight</c> / <c>lora_B.weight</c>,
    /// <c>text_encoder.PATH…</c>; alpha in the <c>lora_adapter_metadata</c> header entry. What
    /// <c>StableDiffusionPipeline.load_lora_weights</c> loads.
    /// </summary>
    Diffusers,

    /// <summary>
    /// kohya's sd-scripts (<c>lora_unet_PATH_WITH_UNDERSCORES.lora_down.weight</c> / <c>lora_up.weight</c> / <c>alpha</c>,
    /// <c>lora_te_…</c>): what ComfyUI and AUTOMATIC1111 load.
    /// </summary>
    Kohya,
}
