using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Models.Clip;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;
using SdPipeline.Training;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Training;

/// <summary>Caption dropout and tag shuffling on the tiny model's real CLIP tokenizer and text encoder.</summary>
public sealed class CaptionAugmentationTests
{
    private static (ClipTextModel TextEncoder, ClipTokenizer Tokenizer) TinyText()
    {
        var folder = DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd"));
        return (ClipTextModel.FromPretrained(folder), ClipTokenizer.FromFolder(folder.Component("tokenizer")));
    }

    private static LatentBatch Batch(ClipTextModel encoder, ClipTokenizer tokenizer, params string[] captions)
    {
        var rows = captions.Select((c, i) => new LatentRow($"id{i}", c, "", "train", "64x64", [0, 0, 64, 64], false, 0, "s", i)).ToList();
        // Held, then disposed, after the stack: a row tensor that nothing referenced once its handle was read could be
        // finalized on the GC's thread while libtorch was still stacking it (a test host crash in THSTensor_stack).
        var rowIds = captions.Select(c => torch.tensor(tokenizer.Encode(c), ScalarType.Int64)).ToList();
        var ids = torch.stack(rowIds);
        foreach (var row in rowIds) row.Dispose();
        using var _ = torch.no_grad();
        var embeddings = encoder.Encode(ids).to(ScalarType.Float16); // as the latent cache stores them
        return new LatentBatch(rows, torch.zeros(captions.Length, 4, 8, 8), torch.ones(captions.Length, 4, 8, 8), ids, embeddings);
    }

    [Test]
    public void ShuffleTags_Should_KeepTheLeadingTags_AndPermuteTheRest()
    {
        string shuffled = CaptionAugmentation.ShuffleTags("sks person, photo, red hat, smiling, outdoors", keep: 1, order: [3, 0, 2, 1]);
        Assert.That(shuffled, Is.EqualTo("sks person, outdoors, photo, smiling, red hat"));
        Assert.That(CaptionAugmentation.ShuffledCount("a, b, c", 1), Is.EqualTo(2));
        Assert.That(CaptionAugmentation.ShuffleTags("one caption without commas", 0, [0]), Is.EqualTo("one caption without commas"));
    }

    [Test]
    public void CaptionDropout_Should_UseTheEmptyPromptsEmbedding_InTheCachesDtype()
    {
        var (encoder, tokenizer) = TinyText();
        using var _ = encoder;
        using var augmentation = CaptionAugmentation.Create(new TrainSection { CaptionDropout = 1.0 }, encoder, tokenizer, 0, torch.CPU)!;
        using var batch = Batch(encoder, tokenizer, "a red circle", "a blue square");
        using var generator = new torch.Generator(0);

        var (embeddings, ids) = augmentation.Apply(batch, generator);

        using var emptyIds = torch.tensor(tokenizer.Encode(""), ScalarType.Int64).unsqueeze(0);
        using var grad = torch.no_grad();
        using var expected = encoder.Encode(emptyIds).to(ScalarType.Float16);
        Assert.That(embeddings.dtype, Is.EqualTo(ScalarType.Float16));
        for (int i = 0; i < 2; i++)
        {
            Assert.That(embeddings[i].eq(expected[0]).all().item<bool>(), Is.True, $"row {i}");
            Assert.That(ids[i].eq(emptyIds[0]).all().item<bool>(), Is.True, $"row {i}");
        }
    }

    [Test]
    public void CaptionDropout_Should_DropAboutTheAskedShare_AndDrawTheSameFromTheSameGenerator()
    {
        var (encoder, tokenizer) = TinyText();
        using var _ = encoder;
        using var augmentation = CaptionAugmentation.Create(new TrainSection { CaptionDropout = 0.25 }, encoder, tokenizer, 0, torch.CPU)!;
        using var batch = Batch(encoder, tokenizer, Enumerable.Range(0, 200).Select(i => $"caption {i}").ToArray());
        long emptyFirst = tokenizer.Encode("")[1];

        static int[] Dropped((Tensor Embeddings, Tensor Ids) result, long endOfText) =>
            Enumerable.Range(0, (int)result.Ids.shape[0]).Where(i => result.Ids[i, 1].item<long>() == endOfText).ToArray();
        using var first = new torch.Generator(7);
        using var second = new torch.Generator(7);
        var a = Dropped(augmentation.Apply(batch, first), emptyFirst);
        var b = Dropped(augmentation.Apply(batch, second), emptyFirst);

        Assert.That(a, Is.EqualTo(b));
        Assert.That(a.Length, Is.InRange(25, 75), "a quarter of 200, within a binomial's spread");
    }

    [Test]
    public void ShuffledTags_Should_BeEncodedByTheTextEncoder_NotReadFromTheCache()
    {
        var (encoder, tokenizer) = TinyText();
        using var _ = encoder;
        using var augmentation = CaptionAugmentation.Create(new TrainSection { ShuffleTags = true, KeepTags = 1 }, encoder, tokenizer, 0, torch.CPU)!;
        using var batch = Batch(encoder, tokenizer, "trigger, alpha, beta, gamma, delta");
        using var generator = new torch.Generator(3);

        var (embeddings, ids) = augmentation.Apply(batch, generator);

        using var grad = torch.no_grad();
        using var encoded = encoder.Encode(ids);
        Assert.That(embeddings.allclose(encoded), Is.True, "the embedding of the shuffled ids");
        Assert.That(ids.eq(batch.InputIds).all().item<bool>(), Is.False, "a 4-tag shuffle with this seed changes the order");
        Assert.That(ids[0, 1].item<long>(), Is.EqualTo(tokenizer.Encode("trigger")[1]), "the kept leading tag stays first");
    }
}
