using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Models.Clip;
using SdPipeline.Tokenization;
using SdPipeline.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tests.Sdxl;

/// <summary>Caption dropout and tag shuffling on SDXL: both tokenizers, both encoders and the pooled embedding, on tiny-sdxl's real ones.</summary>
public sealed class SdxlCaptionAugmentationTests
{
    private sealed class Text : IDisposable
    {
        public ClipTokenizer Tokenizer { get; } = ClipTokenizer.FromFolder(TinySdxl.Open().Component("tokenizer"));
        public ClipTokenizer Tokenizer2 { get; } = ClipTokenizer.FromFolder(TinySdxl.Open().Component("tokenizer_2"));
        public SdxlTextEncoders Encoders { get; } = new(ClipTextModel.FromPretrained(TinySdxl.Open()), ClipTextModelWithProjection.FromPretrained(TinySdxl.Open()));

        public void Dispose()
        {
            Encoders.TextEncoder.Dispose();
            Encoders.TextEncoder2.Dispose();
        }
    }

    // What the latent cache holds for these captions (CaptionEncoder, embeddings in float16), with one bucket's time ids.
    private static LatentBatch CachedBatch(params string[] captions)
    {
        using var encoder = CaptionEncoder.Open(TinySdxl.Open(), ClipTextCleaning.Transformers, 0, CPU);
        var tensors = encoder.Encode(captions, ScalarType.Float16);
        var rows = captions.Select((c, i) => new LatentRow($"id{i}", c, "", "train", "16x16", [0, 0, 16, 16], false, 0, "s", i)).ToList();
        int n = captions.Length;
        return new LatentBatch(rows, zeros(n, 4, 8, 8), ones(n, 4, 8, 8), tensors[LatentTensorNames.InputIds], tensors[LatentTensorNames.TextEmbeddings])
        {
            Sdxl = new SdxlLatentColumns(tensors[LatentTensorNames.InputIds2], tensors[LatentTensorNames.PooledTextEmbeddings],
                full(n, 2, 16L), zeros(n, 2, ScalarType.Int64)),
        };
    }

    private static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Test]
    public void DroppedCaption_Should_ConditionTheUnetOnTheEmptyPrompt_ForBothEncodersAndThePooledEmbedding()
    {
        // Given a cached SDXL batch and dropout of every caption
        using var text = new Text();
        using var batch = CachedBatch("a red circle on a blue background", "a green square");
        using var augmentation = SdxlCaptionAugmentation.Create(new TrainSection { CaptionDropout = 1.0 }, text.Encoders, text.Tokenizer, text.Tokenizer2, CPU)!;
        var conditioning = new SdxlConditioning(null) { CaptionAugmentation = augmentation };
        using var generator = new Generator(0);

        // When a training step asks for the UNet's conditioning
        using var scope = NewDisposeScope();
        var condition = conditioning.Condition(batch, CPU, generator);
        using var same = new Generator(0);
        var captions = augmentation.Apply(batch, same);

        // Then each row is exactly what the cache holds for "" — the 2048-channel-style sequence of both encoders and the
        // second encoder's pooled embedding (float16 in this cache, float32 for the UNet) — and both tokenizers' ids are ""'s
        using var empty = CachedBatch("");
        for (int i = 0; i < 2; i++)
        {
            Assert.That(Same(condition.EncoderHiddenStates[i], empty.TextEmbeddings[0].to(ScalarType.Float32)), Is.True, $"row {i}: prompt_embeds");
            Assert.That(Same(condition.Added!.TextEmbeds[i], empty.Sdxl!.PooledTextEmbeddings[0].to(ScalarType.Float32)), Is.True, $"row {i}: text_embeds");
            Assert.That(Same(captions.PromptEmbeds[i], empty.TextEmbeddings[0]), Is.True, $"row {i}: the cache's dtype");
            Assert.That(Same(captions.InputIds[i], empty.InputIds[0]), Is.True, $"row {i}: input_ids");
            Assert.That(Same(captions.InputIds2[i], empty.Sdxl.InputIds2[0]), Is.True, $"row {i}: input_ids_2");
        }
        Assert.That(Same(condition.EncoderHiddenStates[0], batch.TextEmbeddings[0].to(ScalarType.Float32)), Is.False, "the caption's own embedding is not the empty prompt's");

        // And the time ids still describe the images (dropout replaces the text only)
        Assert.That(condition.Added!.TimeIds.data<float>().ToArray(), Is.EqualTo(new float[] { 16, 16, 0, 0, 16, 16, 16, 16, 0, 0, 16, 16 }));
    }

    [Test]
    public void CaptionDropout_Should_DropAboutTheAskedShare_TheSameRowsInEveryColumn_AndNotInHeldoutEvaluation()
    {
        using var text = new Text();
        using var batch = CachedBatch([.. Enumerable.Range(0, 120).Select(i => $"caption {i}")]);
        using var augmentation = SdxlCaptionAugmentation.Create(new TrainSection { CaptionDropout = 0.25 }, text.Encoders, text.Tokenizer, text.Tokenizer2, CPU)!;
        var conditioning = new SdxlConditioning(null) { CaptionAugmentation = augmentation };
        using var empty = CachedBatch("");
        using var scope = NewDisposeScope();

        int[] Dropped(Tensor rows, Tensor emptyRow) => [.. Enumerable.Range(0, (int)rows.shape[0]).Where(i => rows[i].eq(emptyRow).all().item<bool>())];
        using var first = new Generator(7);
        using var second = new Generator(7);
        var captions = augmentation.Apply(batch, first);
        var again = augmentation.Apply(batch, second);
        var ids = Dropped(captions.InputIds, empty.InputIds[0]);

        Assert.That(ids.Length, Is.InRange(12, 48), "a quarter of 120, within a binomial's spread");
        Assert.That(Dropped(captions.InputIds2, empty.Sdxl!.InputIds2[0]), Is.EqualTo(ids));
        Assert.That(Dropped(captions.PromptEmbeds, empty.TextEmbeddings[0]), Is.EqualTo(ids));
        Assert.That(Dropped(captions.PooledPromptEmbeds, empty.Sdxl.PooledTextEmbeddings[0]), Is.EqualTo(ids));
        Assert.That(Dropped(again.InputIds, empty.InputIds[0]), Is.EqualTo(ids), "the same generator draws the same rows");

        // A held-out evaluation (no generator) reads the cache as it is
        var heldout = conditioning.Condition(batch, CPU);
        Assert.That(Same(heldout.EncoderHiddenStates, batch.TextEmbeddings.to(ScalarType.Float32)), Is.True);
        Assert.That(Same(heldout.Added!.TextEmbeds, batch.Sdxl!.PooledTextEmbeddings.to(ScalarType.Float32)), Is.True);
    }

    [Test]
    public void ShuffledTags_Should_BeEncodedByBothTokenizersAndEncoders_NotReadFromTheCache()
    {
        // Given a tagged caption and shuffling that keeps its first tag
        using var text = new Text();
        const string caption = "trigger, alpha, beta, gamma, delta";
        using var batch = CachedBatch(caption);
        using var augmentation = SdxlCaptionAugmentation.Create(new TrainSection { ShuffleTags = true, KeepTags = 1 }, text.Encoders, text.Tokenizer, text.Tokenizer2, CPU)!;
        using var scope = NewDisposeScope();

        // When a step shuffles it
        using var generator = new Generator(3);
        var captions = augmentation.Apply(batch, generator);

        // Then both tokenizers saw the same shuffled text, the same permutation the SD path draws from that generator
        using var sameSeed = new Generator(3);
        using var order = randperm(4, generator: sameSeed);
        string shuffled = CaptionAugmentation.ShuffleTags(caption, 1, order.data<long>().ToArray());
        Assert.That(shuffled, Is.Not.EqualTo(caption), "this seed changes the order");
        Assert.That(shuffled, Does.StartWith("trigger, "));
        Assert.That(captions.InputIds.data<long>().ToArray(), Is.EqualTo(text.Tokenizer.Encode(shuffled)));
        Assert.That(captions.InputIds2.data<long>().ToArray(), Is.EqualTo(text.Tokenizer2.Encode(shuffled)));

        // And the embeddings are both encoders' output for it (float32), not the cached caption's
        using var noGrad = no_grad();
        var (promptEmbeds, pooled) = text.Encoders.Encode(captions.InputIds, captions.InputIds2);
        Assert.That(Same(captions.PromptEmbeds, promptEmbeds), Is.True);
        Assert.That(Same(captions.PooledPromptEmbeds, pooled), Is.True);
        Assert.That((captions.PooledPromptEmbeds - batch.Sdxl!.PooledTextEmbeddings.to(ScalarType.Float32)).abs().max().item<float>(), Is.GreaterThan(1e-3),
            "the pooled embedding of the shuffled text differs from the cached caption's");
    }

    [Test]
    public void ShuffledTags_Should_GoThroughTheEncodersBeingTrained_When_LoraTrainsTheTextEncoders()
    {
        // Given LoRA on both text encoders (the step encodes the ids itself, with gradients) and tag shuffling
        using var text = new Text();
        const string caption = "trigger, alpha, beta, gamma, delta";
        using var batch = CachedBatch(caption);
        var settings = new TrainSection { ShuffleTags = true, KeepTags = 1, TrainTextEncoder = true, Method = TrainingMethods.Lora };
        using var augmentation = SdxlCaptionAugmentation.Create(settings, text.Encoders, text.Tokenizer, text.Tokenizer2, CPU)!;
        var conditioning = new SdxlConditioning(text.Encoders) { CaptionAugmentation = augmentation };
        using var scope = NewDisposeScope();

        // When a step asks for the conditioning
        using var generator = new Generator(3);
        var condition = conditioning.Condition(batch, CPU, generator);

        // Then it is both encoders' output for the shuffled caption's ids of both tokenizers, computed in the step
        using var sameSeed = new Generator(3);
        using var order = randperm(4, generator: sameSeed);
        string shuffled = CaptionAugmentation.ShuffleTags(caption, 1, order.data<long>().ToArray());
        using var ids = tensor(text.Tokenizer.Encode(shuffled)).unsqueeze(0);
        using var ids2 = tensor(text.Tokenizer2.Encode(shuffled)).unsqueeze(0);
        var (promptEmbeds, pooled) = text.Encoders.Encode(ids, ids2);
        Assert.That(Same(condition.EncoderHiddenStates, promptEmbeds), Is.True);
        Assert.That(Same(condition.Added!.TextEmbeds, pooled), Is.True);
        Assert.That(condition.EncoderHiddenStates.requires_grad, Is.True, "encoded with gradients, for the encoders' adapters");
    }

    [Test]
    public void Create_Should_GiveNothing_When_NeitherIsAsked()
    {
        using var text = new Text();
        Assert.That(SdxlCaptionAugmentation.Create(new TrainSection(), text.Encoders, text.Tokenizer, text.Tokenizer2, CPU), Is.Null);
    }
}
