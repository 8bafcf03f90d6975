using SdPipeline.Models.Unet;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// What the UNet is conditioned on for one batch: the text sequence it attends to, and for SDXL the added conditions
/// (the pooled text embedding and the micro-conditioning time ids). The training step and the held-out evaluation ask for
/// it and call the UNet through <see cref="Predict"/>, so SD and SDXL share one loop.
/// </summary>
/// <param name="EncoderHiddenStates">[B, 77, D]: the text encoder's states (SDXL: both encoders' penultimate states concatenated).</param>
/// <param name="Added">SDXL's <c>added_cond_kwargs</c>, or null for SD 1.x/2.x.</param>
public sealed record UnetConditioning(Tensor EncoderHiddenStates, AddedConditions? Added = null)
{
    /// <summary>The UNet's prediction for <paramref name="noisyLatents"/> at <paramref name="timesteps"/>.</summary>
    public Tensor Predict(UNet2DConditionModel unet, Tensor noisyLatents, Tensor timesteps) =>
        Added is null ? unet.call(noisyLatents, timesteps, EncoderHiddenStates) : unet.forward(noisyLatents, timesteps, EncoderHiddenStates, Added);

    /// <summary>
    /// The same images with other images' captions (the held-out caption-shuffle check): the text — sequence and pooled
    /// embedding — rolled by one within the batch, or the first row of <paramref name="next"/> for a batch of one. The
    /// time ids stay: they describe this batch's images, not their captions.
    /// </summary>
    public UnetConditioning WithShuffledText(UnetConditioning next)
    {
        ArgumentNullException.ThrowIfNull(next);
        bool roll = EncoderHiddenStates.shape[0] > 1;
        Tensor Other(Tensor own, Tensor nextOwn) => roll ? own.roll(1, 0) : nextOwn[..1];
        return new UnetConditioning(Other(EncoderHiddenStates, next.EncoderHiddenStates),
            Added is null ? null : Added with { TextEmbeds = Other(Added.TextEmbeds, next.Added!.TextEmbeds) });
    }
}
