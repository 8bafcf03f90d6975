using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Tokenization;
using TorchSharp.Modules;

namespace SdPipeline.Training;

/// <summary>The modules a run trains (the UNet, and the text encoder when <c>train.train_text_encoder</c> is on).</summary>
/// <param name="Unet">The UNet.</param>
/// <param name="TextEncoder">The text encoder (trained, or frozen and used only when embeddings are not cached).</param>
/// <param name="Tokenizer">The tokenizer (for saving the text encoder's special token ids).</param>
/// <param name="TrainsTextEncoder">Whether the text encoder is trained.</param>
public sealed record TrainedModels(UNet2DConditionModel Unet, ClipTextModel TextEncoder, ClipTokenizer Tokenizer, bool TrainsTextEncoder)
{
    /// <summary>
    /// SDXL's second text encoder when the run uses it (its LoRA adapters train, captions are encoded during training, or
    /// validation images are sampled), else null. Trained only when <see cref="TrainsTextEncoder"/>.
    /// </summary>
    public ClipTextModelWithProjection? TextEncoder2 { get; init; }

    /// <summary>SDXL's second tokenizer (<c>tokenizer_2/</c>), else null.</summary>
    public ClipTokenizer? Tokenizer2 { get; init; }

    /// <summary>The LoRA adapters when <c>train.method</c> is lora (then they are all that is trained), else null.</summary>
    public LoraNetwork? Lora { get; init; }

    /// <summary>Whether the frozen UNet's linear and convolution weights are stored in the autocast dtype (LoRA under mixed precision).</summary>
    public bool HalfPrecisionBase { get; init; }

    /// <summary>
    /// Every trained parameter with a stable name (<c>unet.…</c>, <c>text_encoder.…</c>); with LoRA the adapters' weights
    /// under their diffusers/PEFT keys (<c>unet.PATH.lora_A.weight</c>).
    /// </summary>
    /// <summary>The models a step runs: the UNet and the text encoders.</summary>
    public TorchSharp.torch.nn.Module[] Modules() =>
        TextEncoder2 is null ? [Unet, TextEncoder] : [Unet, TextEncoder, TextEncoder2];

    public IReadOnlyList<(string Name, Parameter Parameter)> Parameters()
    {
        if (Lora is not null) return Lora.Parameters();
        var parameters = Unet.named_parameters().Select(p => ($"unet.{p.name}", p.parameter)).ToList();
        if (TrainsTextEncoder)
            parameters.AddRange(TextEncoder.named_parameters().Select(p => ($"text_encoder.{p.name}", p.parameter)));
        return parameters;
    }
}
