using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>text_encoder</c>: the sidecar's prompts through the tokenizer (→ <c>input_ids</c>), and <c>input_ids</c> through
/// the text encoder (→ <c>last_hidden_state</c>, each layer's <c>hidden_states.i</c>, HF's argmax <c>pooler_output</c>).
/// </summary>
internal sealed class TextEncoderCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } = [ModelComponents.Tokenizer, ModelComponents.TextEncoder];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        if (fixture.Setting<string[]>("prompts") is { } prompts)
            rows.Check($"{name}.input_ids", () =>
            {
                using var ids = model.ClipTokenizer.EncodeBatch(prompts);
                using var expected = fixture.Get("input_ids");
                return [TensorComparison.Of("input_ids", ids, expected, ParityTolerance.Exact)];
            }, $"tokenizer on the sidecar's {prompts.Length} prompts");

        var inputIds = new Lazy<Tensor>(() => fixture.Get("input_ids"));
        var hiddenStates = new Lazy<IReadOnlyList<Tensor>>(() => model.ClipTextModel.HiddenStates(inputIds.Value));
        var lastHidden = new Lazy<Tensor>(() => model.ClipTextModel.forward(inputIds.Value));

        rows.Check($"{name}.last_hidden_state", () =>
            [TensorComparison.Of("last_hidden_state", lastHidden.Value, fixture.Get("last_hidden_state"), ParityTolerance.ModelOutput)]);

        var layerKeys = fixture.Keys.Where(k => k.StartsWith("hidden_states.", StringComparison.Ordinal)).ToList();
        if (layerKeys.Count > 0)
            rows.Check($"{name}.hidden_states", () =>
            {
                var ours = hiddenStates.Value;
                if (ours.Count != layerKeys.Count)
                    throw new ParityFixtureException($"the fixture has {layerKeys.Count} hidden_states.*, the model {ours.Count} (embeddings + one per layer)");
                return Enumerable.Range(0, ours.Count)
                    .Select(i => TensorComparison.Of($"hidden_states.{i}", ours[i], fixture.Get($"hidden_states.{i}"), ParityTolerance.ModelOutput))
                    .ToList();
            }, "embeddings, then each layer before the final LayerNorm");

        if (fixture.Contains("pooler_output"))
            rows.Check($"{name}.pooler_output", () =>
            {
                // transformers' legacy pooling (eos_token_id 2 in SD's config): the state at the largest id, i.e. the first <|endoftext|>.
                var ids = inputIds.Value;
                var pooled = lastHidden.Value[torch.arange(ids.shape[0]), ids.argmax(-1)];
                return [TensorComparison.Of("pooler_output", pooled, fixture.Get("pooler_output"), ParityTolerance.ModelOutput)];
            }, "not used by SD");
    }
}
