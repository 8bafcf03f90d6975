namespace SdPipeline.Weights;

/// <summary>Why pickle checkpoints are refused, and how to convert them.</summary>
public static class PickleRefusal
{
    /// <summary>The refusal message for <paramref name="path"/>.</summary>
    public static string Message(string path) =>
        $"{path}: {System.IO.Path.GetExtension(path)} files are Python pickles, which can run arbitrary code when loaded; " +
        "this tool loads weights only from safetensors. Convert once with diffusers, e.g. " +
        "`python -c \"from diffusers import StableDiffusionPipeline as P; P.from_single_file('model.ckpt').save_pretrained('model-diffusers', safe_serialization=True)\"` " +
        "for a single-file checkpoint, or `.save_pretrained(..., safe_serialization=True)` after `from_pretrained` for a diffusers folder with .bin files, " +
        "then point model.base at the converted folder; for another file of tensors (a LoRA's .bin or .pt), " +
        "`python -c \"import torch, safetensors.torch as st; st.save_file(torch.load('lora.bin', weights_only=True), 'lora.safetensors')\"`.";

    /// <summary>Whether <paramref name="path"/> is named as a pickle checkpoint (<c>.ckpt</c>, <c>.bin</c>, <c>.pt</c>, <c>.pth</c>, <c>.pkl</c>, in any case).</summary>
    public static bool IsPickle(string path) =>
        System.IO.Path.GetExtension(path).ToLowerInvariant() is ".ckpt" or ".bin" or ".pt" or ".pth" or ".pkl";
}
