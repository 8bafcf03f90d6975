using static TorchSharp.torch;

namespace SdPipeline.Sampling;

/// <summary>Classifier-free guidance (Ho and Salimans): push the prediction away from the unconditional one.</summary>
public static class Guidance
{
    /// <summary>
    /// Splits a prediction over the batch <c>[uncond…, cond…]</c> (diffusers' order) and returns
    /// <c>u + g·(c − u)</c>.
    /// </summary>
    public static Tensor Combine(Tensor prediction, double scale)
    {
        var halves = prediction.chunk(2);
        var (uncond, cond) = (halves[0], halves[1]);
        return uncond + scale * (cond - uncond);
    }
}
