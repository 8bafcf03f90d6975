using SdPipeline.BaseModel;
using SdPipeline.Config;
using SdPipeline.Models.Clip;
using SdPipeline.Tokenization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Latents;

/// <summary>
/// The frozen text side of the latent cache: captions to token ids and embeddings. SD 1.x/2.x: one tokenizer and text
/// encoder at <c>model.clip_skip</c>. SDXL: both tokenizers and both encoders (<see cref="SdxlTextEncoders"/>), the
/// concatenated penultimate states in <c>text_embeddings</c> — diffusers' SDXL script caches exactly that
/// <c>prompt_embeds</c> tensor, and it is what the UNet attends to, so training reads it as it is — the pooled
/// embedding beside it, and the second tokenizer's ids (for training the text encoders' LoRA, which encodes again).
/// </summary>
public sealed class CaptionEncoder : IDisposable
{
    private readonly ClipTokenizer _tokenizer;
    private readonly ClipTokenizer? _tokenizer2;
    private readonly ClipTextModel _textEncoder;
    private readonly ClipTextModelWithProjection? _textEncoder2;
    private readonly int _clipSkip;
    private readonly Device _device;

    private CaptionEncoder(ClipTokenizer tokenizer, ClipTokenizer? tokenizer2, ClipTextModel textEncoder, ClipTextModelWithProjection? textEncoder2, int clipSkip, Device device)
    {
        _tokenizer = tokenizer;
        _tokenizer2 = tokenizer2;
        _textEncoder = textEncoder;
        _textEncoder2 = textEncoder2;
        _clipSkip = clipSkip;
        _device = device;
    }

    /// <summary>Whether this encodes for SDXL (two encoders, a pooled embedding).</summary>
    public bool IsSdxl => _textEncoder2 is not null;

    /// <summary>Loads the tokenizer(s) and text encoder(s) of <paramref name="model"/> onto <paramref name="device"/>, frozen.</summary>
    /// <exception cref="ConfigException">SDXL with <c>model.clip_skip</c> other than 0.</exception>
    public static CaptionEncoder Open(DiffusersFolder model, ClipTextCleaning cleaning, int clipSkip, Device device)
    {
        ArgumentNullException.ThrowIfNull(model);
        bool sdxl = SdxlStageSupport.IsSdxlFolder(model);
        if (sdxl && clipSkip != 0)
            throw new ConfigException($"model.clip_skip = {clipSkip}: an SDXL model always conditions on both text encoders' penultimate layers " +
                "(as diffusers' SDXL pipeline and training script do); set model.clip_skip=0");
        var tokenizer = ClipTokenizer.FromFolder(model.Component("tokenizer"), cleaning);
        var textEncoder = ClipTextModel.FromPretrained(model);
        textEncoder.to(device).eval();
        if (!sdxl) return new CaptionEncoder(tokenizer, null, textEncoder, null, clipSkip, device);
        var textEncoder2 = ClipTextModelWithProjection.FromPretrained(model);
        textEncoder2.to(device).eval();
        return new CaptionEncoder(tokenizer, ClipTokenizer.FromFolder(model.Component("tokenizer_2"), cleaning), textEncoder, textEncoder2, clipSkip, device);
    }

    /// <summary>Tokens of <paramref name="caption"/> past what the text encoders read (both tokenizers cut at the same length).</summary>
    public int TokensCut(string caption) => _tokenizer.TokensCut(caption);

    /// <summary>The caption tokens the text encoders read, between the start and end tokens.</summary>
    public int CaptionTokens => _tokenizer.ModelMaxLength - 2;

    /// <summary>
    /// The cache's text tensors of <paramref name="captions"/> as CPU tensors in the caller's dispose scope, by
    /// <see cref="LatentTensorNames"/>: ids as int64, embeddings in <paramref name="embeddingDtype"/>.
    /// </summary>
    public Dictionary<string, Tensor> Encode(IReadOnlyList<string> captions, ScalarType embeddingDtype)
    {
        using var noGrad = torch.no_grad();
        var ids = _tokenizer.EncodeBatch(captions);
        if (_textEncoder2 is null)
            return new Dictionary<string, Tensor>
            {
                [LatentTensorNames.InputIds] = ids,
                [LatentTensorNames.TextEmbeddings] = _textEncoder.Encode(ids.to(_device), _clipSkip).to(embeddingDtype).cpu(),
            };
        var ids2 = _tokenizer2!.EncodeBatch(captions);
        var (promptEmbeds, pooled) = new SdxlTextEncoders(_textEncoder, _textEncoder2).Encode(ids.to(_device), ids2.to(_device));
        return new Dictionary<string, Tensor>
        {
            [LatentTensorNames.InputIds] = ids,
            [LatentTensorNames.TextEmbeddings] = promptEmbeds.to(embeddingDtype).cpu(),
            [LatentTensorNames.InputIds2] = ids2,
            [LatentTensorNames.PooledTextEmbeddings] = pooled.to(embeddingDtype).cpu(),
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _textEncoder.Dispose();
        _textEncoder2?.Dispose();
    }
}
