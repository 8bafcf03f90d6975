using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Models.Clip;
using SdPipeline.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// Two habits of fine-tuning on captioned sets, applied per micro-batch with draws from the run's one generator (so a
/// resumed run draws the same), and drawing nothing when off (so runs without them are unchanged):
/// <list type="bullet">
/// <item><b>Caption dropout</b> (<c>train.caption_dropout</c>, diffusers' <c>--proportion_empty_prompts</c>): each
/// caption is replaced by the empty prompt with probability p, which trains the unconditional prediction that
/// classifier-free guidance subtracts. The empty prompt's embedding is computed once with the frozen text encoder at
/// the run's clip skip and stored in the cache's dtype — exactly the entry the latent cache would hold for "" — so
/// the cached embeddings stay in use.</item>
/// <item><b>Tag shuffling</b> (<c>train.shuffle_tags</c>, kohya's <c>--shuffle_caption</c> / <c>--keep_tokens</c>):
/// the comma-separated tags after the first <c>train.keep_tags</c> are put in a random order. That changes the text,
/// whose embedding no cache holds, so the shuffled captions are encoded each step by the text encoder — frozen and
/// without gradients unless <c>train.train_text_encoder</c> — instead of read from the cache (about one CLIP forward
/// per step, a few percent of a UNet step); the latent cache is used as before and is not invalidated.</item>
/// </list>
/// </summary>
public sealed class CaptionAugmentation : IDisposable
{
    private readonly double _dropout;
    private readonly bool _shuffle;
    private readonly int _keep;
    private readonly ClipTextModel _textEncoder;
    private readonly ClipTokenizer _tokenizer;
    private readonly int _clipSkip;
    private readonly bool _textEncoderTrained;
    private readonly Tensor _emptyIds;
    private readonly Tensor _emptyEmbedding;

    private CaptionAugmentation(TrainSection settings, ClipTextModel textEncoder, ClipTokenizer tokenizer, int clipSkip, Device device)
    {
        _dropout = settings.CaptionDropout;
        _shuffle = settings.ShuffleTags;
        _keep = settings.KeepTags;
        _textEncoder = textEncoder;
        _tokenizer = tokenizer;
        _clipSkip = clipSkip;
        _textEncoderTrained = settings.TrainTextEncoder;
        _emptyIds = torch.tensor(tokenizer.Encode(""), ScalarType.Int64).unsqueeze(0).to(device);
        using var _ = torch.no_grad();
        _emptyEmbedding = textEncoder.Encode(_emptyIds, clipSkip).detach();
    }

    /// <summary>The augmentation the settings ask for, or null when both are off. The text encoder must be on <paramref name="device"/> (frozen unless it is trained).</summary>
    public static CaptionAugmentation? Create(TrainSection settings, ClipTextModel textEncoder, ClipTokenizer tokenizer, int clipSkip, Device device) =>
        settings.CaptionDropout > 0 || settings.ShuffleTags ? new CaptionAugmentation(settings, textEncoder, tokenizer, clipSkip, device) : null;

    /// <summary>Shuffles the tags after the first <paramref name="keep"/> of a comma-separated caption, by <paramref name="order"/> (a permutation of the rest).</summary>
    public static string ShuffleTags(string caption, int keep, IReadOnlyList<long> order)
    {
        var tags = caption.Split(',').Select(t => t.Trim()).Where(t => t.Length > 0).ToList();
        if (tags.Count - keep < 2) return string.Join(", ", tags);
        var rest = tags.Skip(keep).ToList();
        return string.Join(", ", tags.Take(keep).Concat(order.Select(i => rest[(int)i])));
    }

    /// <summary>Number of tags that <see cref="ShuffleTags"/> would reorder.</summary>
    public static int ShuffledCount(string caption, int keep) =>
        Math.Max(0, caption.Split(',').Count(t => t.Trim().Length > 0) - keep);

    /// <summary>
    /// Each row's caption with its tags after the first <paramref name="keep"/> shuffled, one permutation drawn from
    /// <paramref name="generator"/> per row that has two or more of them (and nothing drawn for the others).
    /// </summary>
    public static List<string> ShuffledCaptions(IEnumerable<LatentRow> rows, int keep, Generator generator) =>
        rows.Select(row =>
        {
            int n = ShuffledCount(row.Caption, keep);
            if (n < 2) return row.Caption;
            using var order = torch.randperm(n, generator: generator);
            return ShuffleTags(row.Caption, keep, order.data<long>().ToArray());
        }).ToList();

    /// <summary>
    /// The batch's text conditioning after the augmentations: embeddings (the cache's dtype where cached, float32 where
    /// encoded here) and token ids (for a trained text encoder, which encodes them itself).
    /// </summary>
    public (Tensor Embeddings, Tensor InputIds) Apply(LatentBatch batch, Generator generator)
    {
        int count = batch.Rows.Count;
        var device = _emptyIds.device;
        Tensor ids = batch.InputIds.to(device);
        Tensor embeddings = batch.TextEmbeddings.to(device);
        if (_shuffle)
        {
            ids = _tokenizer.EncodeBatch(ShuffledCaptions(batch.Rows, _keep, generator)).to(device);
            if (!_textEncoderTrained)
                using (torch.no_grad())
                    embeddings = _textEncoder.Encode(ids, _clipSkip);
        }
        if (_dropout > 0)
        {
            var drop = (torch.rand(count, generator: generator) < _dropout).to(device);
            ids = torch.where(drop.unsqueeze(1), _emptyIds.expand(count, -1), ids);
            var empty = _emptyEmbedding.to(embeddings.dtype).expand(count, -1, -1);
            embeddings = torch.where(drop.unsqueeze(1).unsqueeze(2), empty, embeddings);
        }
        return (embeddings, ids);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _emptyIds.Dispose();
        _emptyEmbedding.Dispose();
    }
}
