using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>text_encoders</c> (SDXL): the sidecar's prompts through both tokenizers (→ <c>input_ids</c>, <c>input_ids_2</c>),
/// each encoder's hidden states layer by layer, the second encoder's end-of-text positions, pooled output and projection,
/// and <c>encode_prompt</c>'s result (<c>prompt_embeds</c>, <c>pooled_prompt_embeds</c>).
/// </summary>
internal sealed class SdxlTextEncodersCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } =
        [ModelComponents.Tokenizer, ModelComponents.Tokenizer2, ModelComponents.TextEncoder, ModelComponents.TextEncoder2];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        var prompts = fixture.Require<string[]>("prompts");
        rows.Check($"{name}.input_ids", () =>
        [
            TensorComparison.Of("input_ids", model.ClipTokenizer.EncodeBatch(prompts), fixture.Get("input_ids"), ParityTolerance.Exact),
            TensorComparison.Of("input_ids_2", model.ClipTokenizer2.EncodeBatch(prompts), fixture.Get("input_ids_2"), ParityTolerance.Exact),
        ], $"both tokenizers on the sidecar's {prompts.Length} prompts (pads 49407 / \"!\")");

        rows.Check($"{name}.text_encoder", () =>
        {
            var ids = fixture.Get("input_ids");
            var states = model.ClipTextModel.HiddenStates(ids);
            var comparisons = LayerComparisons("text_encoder", states, fixture);
            comparisons.Add(TensorComparison.Of("text_encoder.last_hidden_state", model.ClipTextModel.forward(ids),
                fixture.Get("text_encoder.last_hidden_state"), ParityTolerance.ModelOutput));
            return comparisons;
        }, "every hidden state and last_hidden_state");

        rows.Check($"{name}.text_encoder_2", () =>
        {
            var ids = fixture.Get("input_ids_2");
            var encoder = model.ClipTextModelWithProjection;
            var comparisons = LayerComparisons("text_encoder_2", encoder.HiddenStates(ids), fixture);
            var last = encoder.LastHiddenState(ids);
            comparisons.Add(TensorComparison.Of("text_encoder_2.last_hidden_state", last, fixture.Get("text_encoder_2.last_hidden_state"), ParityTolerance.ModelOutput));
            if (fixture.Contains("text_encoder_2.pooled_index"))
                comparisons.Add(TensorComparison.Of("text_encoder_2.pooled_index", encoder.PooledIndex(ids), fixture.Get("text_encoder_2.pooled_index"), ParityTolerance.Exact));
            comparisons.Add(TensorComparison.Of("text_encoder_2.pooler_output", encoder.Pool(last, ids), fixture.Get("text_encoder_2.pooler_output"), ParityTolerance.ModelOutput));
            comparisons.Add(TensorComparison.Of("text_encoder_2.text_embeds", encoder.forward(ids), fixture.Get("text_encoder_2.text_embeds"), ParityTolerance.ModelOutput));
            return comparisons;
        }, "hidden states, end-of-text position, pooled output, text_projection");

        rows.Check($"{name}.prompt_embeds", () =>
        {
            var embeddings = model.SdxlPromptEncoder.Encode(prompts, torch.CPU);
            return
            [
                TensorComparison.Of("prompt_embeds", embeddings.PromptEmbeds, fixture.Get("prompt_embeds"), ParityTolerance.ModelOutput),
                TensorComparison.Of("pooled_prompt_embeds", embeddings.PooledPromptEmbeds, fixture.Get("pooled_prompt_embeds"), ParityTolerance.ModelOutput),
            ];
        }, "encode_prompt: both penultimate layers concatenated, the pooled projection");
    }

    private static List<TensorComparison> LayerComparisons(string encoder, IReadOnlyList<Tensor> states, ParityFixture fixture)
    {
        int expected = fixture.Keys.Count(k => k.StartsWith($"{encoder}.hidden_states.", StringComparison.Ordinal));
        if (expected != states.Count)
            throw new ParityFixtureException($"the fixture has {expected} {encoder}.hidden_states.*, the model {states.Count} (embeddings + one per layer)");
        return Enumerable.Range(0, states.Count)
            .Select(i => TensorComparison.Of($"{encoder}.hidden_states.{i}", states[i], fixture.Get($"{encoder}.hidden_states.{i}"), ParityTolerance.ModelOutput))
            .ToList();
    }
}
