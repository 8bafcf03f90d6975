using SdPipeline.Config;
using SdPipeline.Latents;
using SdPipeline.Models.Clip;
using SdPipeline.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>A batch's SDXL text conditioning after caption augmentation.</summary>
/// <param name="PromptEmbeds">[B, 77, D₁ + D₂]: both encoders' penultimate states (the cache's dtype where cached, float32 where encoded here).</param>
/// <param name="PooledPromptEmbeds">[B, projection_dim]: the second encoder's pooled, projected embedding.</param>
/// <param name="InputIds">The first tokenizer's ids [B, 77] (a trained text encoder encodes them itself).</param>
/// <param name="InputIds2">The second tokenizer's ids [B, 77].</param>
public sealed record SdxlCaptions(Tensor PromptEmbeds, Tensor PooledPromptEmbeds, Tensor InputIds, Tensor InputIds2);

/// <summary>
/// <see cref="CaptionAugmentation"/> for SDXL, where a caption is conditioned on by two tokenizers and two text encoders
/// and the pooled embedding of the second. The same draws from the run's generator, in the same order (a permutation per
/// shuffled caption, then one uniform per caption for dropout), and nothing drawn when both are off:
/// <list type="bullet">
/// <item><b>Caption dropout</b>: a dropped caption becomes the empty prompt in all four columns — both tokenizers' ids,
/// the concatenated sequence embedding and the pooled embedding — encoded once by both frozen encoders and stored in the
/// cache's dtype, which is what the latent cache would hold for <c>""</c> and what diffusers'
/// <c>train_text_to_image_sdxl.py</c> encodes for a caption <c>--proportion_empty_prompts</c> empties (it encodes
/// <c>""</c>, not zeros).</item>
/// <item><b>Tag shuffling</b>: the shuffled caption goes through both tokenizers and, unless LoRA trains the encoders
/// (which then encode the ids themselves, with gradients), through both frozen encoders each step, as kohya's
/// <c>sdxl_train.py</c> does when text-encoder outputs are not cached.</item>
/// </list>
/// </summary>
public sealed class SdxlCaptionAugmentation : IDisposable
{
    private readonly double _dropout;
    private readonly bool _shuffle;
    private readonly int _keep;
    private readonly SdxlTextEncoders _encoders;
    private readonly ClipTokenizer _tokenizer;
    private readonly ClipTokenizer _tokenizer2;
    private readonly bool _textEncodersTrained;
    private readonly Tensor _emptyIds;
    private readonly Tensor _emptyIds2;
    private readonly Tensor _emptyPromptEmbeds;
    private readonly Tensor _emptyPooled;

    private SdxlCaptionAugmentation(TrainSection settings, SdxlTextEncoders encoders, ClipTokenizer tokenizer, ClipTokenizer tokenizer2, Device device)
    {
        _dropout = settings.CaptionDropout;
        _shuffle = settings.ShuffleTags;
        _keep = settings.KeepTags;
        _encoders = encoders;
        _tokenizer = tokenizer;
        _tokenizer2 = tokenizer2;
        _textEncodersTrained = settings.TrainTextEncoder;
        _emptyIds = torch.tensor(tokenizer.Encode(""), ScalarType.Int64).unsqueeze(0).to(device);
        _emptyIds2 = torch.tensor(tokenizer2.Encode(""), ScalarType.Int64).unsqueeze(0).to(device);
        using var _ = torch.no_grad();
        var (promptEmbeds, pooled) = encoders.Encode(_emptyIds, _emptyIds2);
        _emptyPromptEmbeds = promptEmbeds.detach();
        _emptyPooled = pooled.detach();
    }

    /// <summary>
    /// The augmentation the settings ask for, or null when both are off. Both encoders must be on <paramref name="device"/>,
    /// frozen unless LoRA trains them (their adapters are then already attached: the empty prompt is encoded before training
    /// changes anything, as the latent cache encoded the captions).
    /// </summary>
    public static SdxlCaptionAugmentation? Create(TrainSection settings, SdxlTextEncoders encoders, ClipTokenizer tokenizer, ClipTokenizer tokenizer2, Device device)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return settings.CaptionDropout > 0 || settings.ShuffleTags ? new SdxlCaptionAugmentation(settings, encoders, tokenizer, tokenizer2, device) : null;
    }

    /// <summary>The batch's text conditioning after the augmentations, on the device of the encoders.</summary>
    /// <exception cref="InvalidOperationException">The batch is not from an SDXL cache.</exception>
    public SdxlCaptions Apply(LatentBatch batch, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var columns = batch.Sdxl ?? throw new InvalidOperationException("SDXL caption augmentation needs an SDXL latent cache; rebuild the latents stage");
        int count = batch.Rows.Count;
        var device = _emptyIds.device;
        Tensor ids = batch.InputIds.to(device), ids2 = columns.InputIds2.to(device);
        Tensor promptEmbeds = batch.TextEmbeddings.to(device), pooled = columns.PooledTextEmbeddings.to(device);
        if (_shuffle)
        {
            var captions = CaptionAugmentation.ShuffledCaptions(batch.Rows, _keep, generator);
            ids = _tokenizer.EncodeBatch(captions).to(device);
            ids2 = _tokenizer2.EncodeBatch(captions).to(device);
            if (!_textEncodersTrained)
                using (torch.no_grad())
                    (promptEmbeds, pooled) = _encoders.Encode(ids, ids2);
        }
        if (_dropout > 0)
        {
            var drop = (torch.rand(count, generator: generator) < _dropout).to(device);
            var row = drop.unsqueeze(1);
            ids = torch.where(row, _emptyIds.expand(count, -1), ids);
            ids2 = torch.where(row, _emptyIds2.expand(count, -1), ids2);
            promptEmbeds = torch.where(row.unsqueeze(2), _emptyPromptEmbeds.to(promptEmbeds.dtype).expand(count, -1, -1), promptEmbeds);
            pooled = torch.where(row, _emptyPooled.to(pooled.dtype).expand(count, -1), pooled);
        }
        return new SdxlCaptions(promptEmbeds, pooled, ids, ids2);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _emptyIds.Dispose();
        _emptyIds2.Dispose();
        _emptyPromptEmbeds.Dispose();
        _emptyPooled.Dispose();
    }
}
