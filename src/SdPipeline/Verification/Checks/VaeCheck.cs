using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>vae</c>: <c>encode(image)</c>'s posterior (<c>moments</c>, <c>mean</c>, clamped <c>logvar</c>, <c>std</c>, and
/// <c>latent_sample</c> with the recorded noise), and <c>decode</c> of <c>decode_input</c> and of the mean. No
/// scaling factor is applied inside these.
/// </summary>
internal sealed class VaeCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } = [ModelComponents.Vae];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        rows.Check($"{name}.encode", () =>
        {
            using var posterior = model.AutoencoderKL.Encode(fixture.Get("image"));
            var ours = new Dictionary<string, Func<Tensor>>
            {
                ["moments"] = () => posterior.Parameters,
                ["mean"] = () => posterior.Mean,
                ["logvar"] = () => posterior.LogVar,
                ["std"] = () => posterior.Std,
                ["latent_sample"] = () => posterior.Sample(fixture.Get("sample_eps")),
            };
            return ours.Where(o => fixture.Contains(o.Key))
                .Select(o => TensorComparison.Of(o.Key, o.Value(), fixture.Get(o.Key), ParityTolerance.ModelOutput))
                .ToList();
        }, "posterior of image");

        rows.Check($"{name}.decode", () =>
        {
            var comparisons = new List<TensorComparison>
            {
                TensorComparison.Of("decode_output", model.AutoencoderKL.Decode(fixture.Get("decode_input")), fixture.Get("decode_output"), ParityTolerance.ModelOutput),
            };
            if (fixture.Contains("decode_of_mean"))
                comparisons.Add(TensorComparison.Of("decode_of_mean", model.AutoencoderKL.Decode(fixture.Get("mean")), fixture.Get("decode_of_mean"), ParityTolerance.ModelOutput));
            return comparisons;
        });
    }
}
