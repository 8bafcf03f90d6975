using Newtonsoft.Json.Linq;
using SdPipeline.Models.Unet;
using SdPipeline.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>train_step_*</c> of an SDXL model (<c>train_text_to_image_sdxl.py</c>): per step, the columns the script caches
/// before training (both tokenizers on the captions, the prompt and pooled embeddings from the ids, the VAE posterior
/// of the pixels and the scaled latents, the time ids from the sidecar's original sizes and crops), then the step
/// itself as <see cref="TrainStepCheck"/> does it, with the added conditions.
/// </summary>
internal sealed class SdxlTrainStepCheck : IParityCheck
{
    private readonly TrainStepCheck _step = new();

    public IReadOnlyList<string> Components { get; } =
    [
        ModelComponents.Scheduler, ModelComponents.Tokenizer, ModelComponents.Tokenizer2, ModelComponents.TextEncoder,
        ModelComponents.TextEncoder2, ModelComponents.Vae,
    ];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        var batches = fixture.Sidecar["batches"] as JArray;
        for (int step = 0; fixture.Contains($"step{step}.time_ids"); step++)
        {
            string prefix = $"step{step}";
            var batch = batches is not null && step < batches.Count ? batches[step] as JObject : null;
            rows.Check($"{fixture.Name}.{prefix}.cached_columns", () =>
            {
                using var _ = no_grad();
                var comparisons = new List<TensorComparison>();
                var encoder = model.SdxlPromptEncoder;
                if (batch?["captions"] is JArray captions)
                {
                    var texts = captions.Values<string>().Select(c => c ?? "").ToList();
                    comparisons.Add(TensorComparison.Of("input_ids", encoder.Tokenizer.EncodeBatch(texts), fixture.Get($"{prefix}.input_ids"), ParityTolerance.Exact));
                    comparisons.Add(TensorComparison.Of("input_ids_2", encoder.Tokenizer2.EncodeBatch(texts), fixture.Get($"{prefix}.input_ids_2"), ParityTolerance.Exact));
                }
                var embeddings = encoder.EncodeIds(fixture.Get($"{prefix}.input_ids"), fixture.Get($"{prefix}.input_ids_2"));
                comparisons.Add(TensorComparison.Of("encoder_hidden_states", embeddings.PromptEmbeds, fixture.Get($"{prefix}.encoder_hidden_states"), ParityTolerance.ModelOutput));
                comparisons.Add(TensorComparison.Of("text_embeds", embeddings.PooledPromptEmbeds, fixture.Get($"{prefix}.text_embeds"), ParityTolerance.ModelOutput));

                using var posterior = model.AutoencoderKL.Encode(fixture.Get($"{prefix}.pixel_values"));
                comparisons.Add(TensorComparison.Of("latent_dist_mean", posterior.Mean, fixture.Get($"{prefix}.latent_dist_mean"), ParityTolerance.ModelOutput));
                comparisons.Add(TensorComparison.Of("latent_dist_std", posterior.Std, fixture.Get($"{prefix}.latent_dist_std"), ParityTolerance.ModelOutput));
                var latents = posterior.Sample(fixture.Get($"{prefix}.latent_sample_eps")) * model.AutoencoderKL.Config.ScalingFactor;
                comparisons.Add(TensorComparison.Of("latents", latents, fixture.Get($"{prefix}.latents"), ParityTolerance.ModelOutput));

                if (batch is not null)
                    comparisons.Add(TensorComparison.Of("time_ids", TimeIds(batch, fixture.Name), fixture.Get($"{prefix}.time_ids"), ParityTolerance.Exact));
                return comparisons;
            }, "captions → ids → embeddings, pixels → latents × scaling_factor, sizes and crops → time ids");
        }
        _step.Run(fixture, model, rows);
    }

    // compute_time_ids: the image's (height, width) before Resize, the crop's (top, left) after it, the training resolution.
    private static Tensor TimeIds(JObject batch, string fixture)
    {
        var originals = batch["original_sizes"]?.ToObject<int[][]>() ?? throw new ParityFixtureException($"{fixture}.json: a batch has no original_sizes");
        var crops = batch["crop_top_lefts"]?.ToObject<int[][]>() ?? throw new ParityFixtureException($"{fixture}.json: a batch has no crop_top_lefts");
        var target = batch["target_size"]?.ToObject<int[]>() ?? throw new ParityFixtureException($"{fixture}.json: a batch has no target_size");
        return SdxlTimeIds.Stack(originals.Zip(crops, (o, c) => new SdxlTimeIds(o[0], o[1], c[0], c[1], target[0], target[1])).ToList());
    }
}
