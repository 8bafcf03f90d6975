using Newtonsoft.Json.Linq;
using SdPipeline.Latents;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>The training step's SDXL conditioning from cache columns against train_text_to_image_sdxl.py's (parity-sdxl/train_step_sdxl).</summary>
public sealed class SdxlConditioningTests
{
    [Test]
    public void Condition_Should_GiveTheUnetDiffusersTimeIdsAndInputs_When_BuiltFromCachedColumns()
    {
        // Given the script's two batches as the latent cache would hold them: cached embeddings, pooled embeddings, sizes and crops
        using var fixture = TinySdxl.Parity("train_step_sdxl");
        var sidecar = JObject.Parse(File.ReadAllText(Path.Combine(TinySdxl.ParityFolder, "train_step_sdxl.json")));
        using var unet = UNet2DConditionModel.FromFolder(TinySdxl.Open());
        unet.train();
        var conditioning = new SdxlConditioning(null);

        for (int step = 0; step < 2; step++)
        {
            using var scope = NewDisposeScope();
            var batch = (JObject)sidecar["batches"]![step]!;
            var originals = batch["original_sizes"]!.ToObject<long[][]>()!;
            var crops = batch["crop_top_lefts"]!.ToObject<long[][]>()!;
            var rows = Enumerable.Range(0, originals.Length)
                .Select(i => new LatentRow($"{i}", "", "", "train", "16x16", [0, 0, 16, 16], false, 0, "shard", i)).ToList();
            var latents = fixture.Get($"step{step}.latents");
            using var cached = new LatentBatch(rows, latents, zeros_like(latents), fixture.Get($"step{step}.input_ids"), fixture.Get($"step{step}.encoder_hidden_states"))
            {
                Sdxl = new SdxlLatentColumns(fixture.Get($"step{step}.input_ids_2"), fixture.Get($"step{step}.text_embeds"),
                    torch.tensor(originals.SelectMany(o => o).ToArray(), [originals.Length, 2]), torch.tensor(crops.SelectMany(c => c).ToArray(), [crops.Length, 2])),
            };

            // When the training step asks for the UNet's conditioning and prediction
            var condition = conditioning.Condition(cached, CPU);
            using var noGrad = no_grad();
            var prediction = condition.Predict(unet, fixture.Get($"step{step}.noisy_latents"), fixture.Get($"step{step}.timesteps"));

            // Then the time ids are compute_time_ids' exactly, and the prediction is the script's model_pred (step 0: same weights)
            Assert.That(condition.Added!.TimeIds.data<float>().ToArray(), Is.EqualTo(fixture.Get($"step{step}.time_ids").data<float>().ToArray()), $"step {step}");
            if (step == 0)
                Assert.That((prediction - fixture.Get("step0.model_pred")).abs().max().item<float>(), Is.LessThan(TinySdxl.ModelTolerance));
        }
    }
}
