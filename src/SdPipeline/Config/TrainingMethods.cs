namespace SdPipeline.Config;

/// <summary>The values of <c>train.method</c>.</summary>
public static class TrainingMethods
{
    /// <summary>Fine-tune every weight of the UNet (and the text encoder when trained).</summary>
    public const string Full = "full";

    /// <summary>Train low-rank adapters on frozen weights.</summary>
    public const string Lora = "lora";
}
