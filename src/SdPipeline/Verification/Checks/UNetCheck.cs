using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>unet</c>: <c>out = unet(sample, timesteps, encoder_hidden_states)</c>, the same with a 0-d float timestep
/// (<c>out_timestep_scalar</c>), and the stem's <c>intermediate.*</c> (time_proj, time_embedding, conv_in), which
/// tell a timestep-embedding error from one deeper in the network.
/// </summary>
internal sealed class UNetCheck : IParityCheck
{
    // The stem modules whose outputs the fixture records, in forward order.
    private static readonly string[] Stem = ["time_proj", "time_embedding", "conv_in"];

    public IReadOnlyList<string> Components { get; } = [ModelComponents.Unet];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        rows.Check($"{name}.out", () =>
        {
            var output = model.UNet.call(fixture.Get("sample"), fixture.Get("timesteps"), fixture.Get("encoder_hidden_states"));
            return [TensorComparison.Of("out", output, fixture.Get("out"), ParityTolerance.ModelOutput)];
        });

        if (fixture.Contains("out_timestep_scalar"))
            rows.Check($"{name}.out_timestep_scalar", () =>
            {
                var output = model.UNet.call(fixture.Get("sample"), fixture.Get("timestep_scalar"), fixture.Get("encoder_hidden_states"));
                return [TensorComparison.Of("out_timestep_scalar", output, fixture.Get("out_timestep_scalar"), ParityTolerance.ModelOutput)];
            }, "0-d float timestep broadcast to the batch");

        if (Stem.Any(s => fixture.Contains($"intermediate.{s}")))
            rows.Check($"{name}.intermediate", () => CompareStem(fixture, model),
                "time_proj, time_embedding, conv_in (block outputs are not exposed)");
    }

    private static List<TensorComparison> CompareStem(ParityFixture fixture, ModelComponents model)
    {
        var modules = model.UNet.named_children().ToDictionary(c => c.name, c => c.module);
        nn.Module<Tensor, Tensor> Module(string key) => modules.TryGetValue(key, out var m) && m is nn.Module<Tensor, Tensor> typed
            ? typed
            : throw new ParityFixtureException($"the UNet has no '{key}' module to compare intermediate.{key} with");

        var sample = fixture.Get("sample");
        var timesteps = fixture.Get("timesteps").expand(sample.shape[0]);
        var timeProj = Module("time_proj").call(timesteps);
        var outputs = new Dictionary<string, Tensor>
        {
            ["time_proj"] = timeProj,
            ["time_embedding"] = Module("time_embedding").call(timeProj.to(sample.dtype)),
            ["conv_in"] = Module("conv_in").call(sample),
        };
        return Stem.Where(s => fixture.Contains($"intermediate.{s}"))
            .Select(s => TensorComparison.Of($"intermediate.{s}", outputs[s], fixture.Get($"intermediate.{s}"), ParityTolerance.ModelOutput))
            .ToList();
    }
}
