using SdPipeline.Latents;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>Held-out loss, and the same loss with every caption swapped for another image's.</summary>
/// <param name="Loss">Mean loss on held-out images with their own captions.</param>
/// <param name="ShuffledLoss">Mean loss with shuffled captions; <c>ShuffledLoss − Loss</c> says how much the model uses the text.</param>
public sealed record HeldoutResult(double Loss, double ShuffledLoss);

/// <summary>
/// Measures the held-out loss on a fixed set of held-out images at fixed timesteps and fixed noise (drawn once,
/// from their own generator, so evaluations are comparable across the run and do not disturb the training
/// stream), and the same with each caption replaced by the next image's: when the model uses the text, the
/// wrong captions cost it, and the gap grows as it learns.
/// </summary>
public sealed class HeldoutEvaluator : IDisposable
{
    private const int EvaluationSeed = 20_240_229;
    private readonly List<(Tensor Latents, Tensor Noise, Tensor Timesteps, LatentBatch Text)> _batches = [];

    /// <summary>Prepares the held-out batches from <paramref name="rows"/> (variant 0 of each item).</summary>
    public HeldoutEvaluator(LatentDataset dataset, IReadOnlyList<LatentRow> rows, int maxItems, int batchSize, double scalingFactor, int numTrainTimesteps)
    {
        var chosen = rows.Where(r => r.Variant == 0).Take(maxItems).ToList();
        Count = chosen.Count;
        if (chosen.Count == 0) return;
        using var generator = new torch.Generator(EvaluationSeed);
        foreach (var group in chosen.GroupBy(r => r.Bucket))
        {
            var bucketRows = group.ToList();
            for (int start = 0; start < bucketRows.Count; start += batchSize)
            {
                // Kept whole (detached from any dispose scope): the text columns, SDXL's included, condition every evaluation.
                var batch = dataset.Read(bucketRows.GetRange(start, Math.Min(batchSize, bucketRows.Count - start)));
                foreach (var tensor in new[] { batch.Mean, batch.Std, batch.InputIds, batch.TextEmbeddings }
                    .Concat(batch.Sdxl is { } sdxl ? [sdxl.InputIds2, sdxl.PooledTextEmbeddings, sdxl.OriginalSize, sdxl.CropTopLeft] : []))
                    tensor.DetachFromDisposeScope();
                var epsilon = torch.randn(batch.Mean.shape, generator: generator);
                var latents = ((batch.Mean.to(ScalarType.Float32) + batch.Std.to(ScalarType.Float32) * epsilon) * scalingFactor).DetachFromDisposeScope();
                var noise = torch.randn(latents.shape, generator: generator).DetachFromDisposeScope();
                var timesteps = torch.randint(0, numTrainTimesteps, [latents.shape[0]], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope();
                _batches.Add((latents, noise, timesteps, batch));
            }
        }
    }

    /// <summary>Held-out images evaluated.</summary>
    public int Count { get; }

    /// <summary>
    /// Evaluates with <paramref name="predict"/> (noisy latents, timesteps, conditioning → prediction) and
    /// <paramref name="condition"/> (a cached batch → the UNet's conditioning on <paramref name="device"/>).
    /// </summary>
    public HeldoutResult? Evaluate(TrainingObjective objective, Func<Tensor, Tensor, UnetConditioning, Tensor> predict, Func<LatentBatch, UnetConditioning> condition, Device device)
    {
        if (_batches.Count == 0) return null;
        using var noGrad = torch.no_grad();
        // One scope for the whole evaluation: the embeddings live across batches, and `.to(device)` may hand back
        // the cached tensor itself, which must survive (it was made outside this scope, so the scope leaves it alone).
        using var evaluationScope = torch.NewDisposeScope();
        double loss = 0, shuffled = 0;
        long count = 0;
        var conditions = _batches.Select(b => condition(b.Text)).ToList();
        for (int i = 0; i < _batches.Count; i++)
        {
            using var scope = torch.NewDisposeScope();
            var (latents, noise, timesteps, _) = _batches[i];
            var batch = objective.Build(latents.to(device), noise.to(device), noise.to(device), timesteps.to(device));
            var own = conditions[i];
            // Another image's caption for each image: roll by one within the batch, or take the next batch's
            // when a batch holds a single image.
            var other = own.WithShuffledText(conditions[(i + 1) % conditions.Count]);
            long n = latents.shape[0];
            loss += objective.Loss(predict(batch.NoisyLatents, batch.Timesteps, own), batch.Target, batch.Timesteps).item<float>() * n;
            shuffled += objective.Loss(predict(batch.NoisyLatents, batch.Timesteps, other), batch.Target, batch.Timesteps).item<float>() * n;
            count += n;
        }
        return new HeldoutResult(loss / count, shuffled / count);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (latents, noise, timesteps, text) in _batches)
        {
            latents.Dispose();
            noise.Dispose();
            timesteps.Dispose();
            text.Dispose();
        }
        _batches.Clear();
    }
}
