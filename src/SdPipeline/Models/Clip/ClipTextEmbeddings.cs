using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Models.Clip;

/// <summary>Token plus learned position embeddings. Mirrors transformers' <c>CLIPTextEmbeddings</c>.</summary>
/// <remarks>
/// transformers also keeps a <c>position_ids</c> buffer (0..76); it is non-persistent since 4.31, so it is no
/// weight key, and older files that still carry it have it ignored on load. The positions are made here instead.
/// </remarks>
internal sealed class ClipTextEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;
    private readonly long _maxPositions;

    public ClipTextEmbeddings(ClipTextConfig config, Device? device) : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = nn.Embedding(config.VocabSize, config.HiddenSize, device: device);
        position_embedding = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize, device: device);
        _maxPositions = config.MaxPositionEmbeddings;
        RegisterComponents();
    }

    /// <summary>[B, T] token ids → [B, T, hidden].</summary>
    public override Tensor forward(Tensor inputIds)
    {
        long length = inputIds.shape[^1];
        if (length > _maxPositions)
            throw new ArgumentException($"input_ids has {length} tokens; this text encoder has {_maxPositions} positions (max_position_embeddings)", nameof(inputIds));
        using var positions = torch.arange(length, dtype: ScalarType.Int64, device: inputIds.device);
        using var positionEmbeddings = position_embedding.call(positions);
        using var tokenEmbeddings = token_embedding.call(inputIds);
        return tokenEmbeddings + positionEmbeddings;
    }
}
