using TorchSharp;

namespace SdPipeline.Lora;

/// <summary>An adapter attached to one layer of a model.</summary>
/// <param name="Component"><c>unet</c> or <c>text_encoder</c>.</param>
/// <param name="Path">The layer's module path inside the component.</param>
/// <param name="Layer">The layer (a linear layer or a convolution, plain or <see cref="Training.Precision.AutocastLayer"/>).</param>
/// <param name="Adapter">The adapter.</param>
public sealed record LoraModule(string Component, string Path, torch.nn.Module Layer, LoraAdapter Adapter)
{
    /// <summary>The adapter's down weight name in the diffusers/PEFT layout (<c>unet.PATH.lora_A.weight</c>).</summary>
    public string DownName => $"{Component}.{Path}.lora_A.weight";

    /// <summary>The adapter's up weight name in the diffusers/PEFT layout (<c>unet.PATH.lora_B.weight</c>).</summary>
    public string UpName => $"{Component}.{Path}.lora_B.weight";
}
