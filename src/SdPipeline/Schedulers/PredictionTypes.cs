namespace SdPipeline.Schedulers;

/// <summary>The <c>prediction_type</c> values SdPipeline supports: what the UNet predicts, the noise or the velocity.</summary>
public static class PredictionTypes
{
    /// <summary>The noise ε (Stable Diffusion 1.x, 2.x base).</summary>
    public const string Epsilon = "epsilon";

    /// <summary>The velocity v = α·ε − σ·x₀ (Stable Diffusion 2.x 768).</summary>
    public const string VPrediction = "v_prediction";

    /// <summary>Both, in the order the config documents them.</summary>
    public static IReadOnlyList<string> All { get; } = [Epsilon, VPrediction];
}
