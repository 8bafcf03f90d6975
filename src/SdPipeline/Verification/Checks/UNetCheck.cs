using SdPipeline.Models.Unet;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>unet</c>: <c>out = unet(sample, timesteps, encoder_hidden_states)</c>, the same with a 0-d float timestep
/// (<c>out_timestep_scalar</c>), and the stem's <c>intermediate.*</c> (time_proj, time_embedding, conv_in), which
/// tell a timestep-embedding error from one deeper in the network. An SDXL fixture (with <c>text_embeds</c> and
/// <c>time_ids</c>) passes them as the added conditions and also compares the <c>text_time</c> embedding
/// (<c>add_time_proj</c>, <c>add_embedding</c>).
/// </summary>
internal sealed class UNetCheck : IParityCheck
{
    // The stem modules whose outputs the fixture records, in forward order.
    private static readonly string[] Stem = ["time_proj", "time_embedding", "add_time_proj", "add_embedding", "conv_in"];

    public IReadOnlyList<string> Components { get; } = [ModelComponents.Unet];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        using var _ = no_grad();
        string name = fixture.Name;
        var added = fixture.Contains("time_ids") ? new AddedConditions(fixture.Get("text_embeds"), fixture.Get("time_ids")) : null;
        rows.Check($"{name}.out", () =>
        {
            var output = model.UNet.forward(fixture.Get("sample"), fixture.Get("timesteps"), fixture.Get("encoder_hidden_states"), added);
            return [TensorComparison.Of("out", output, fixture.Get("out"), ParityTolerance.ModelOutput)];
        });

        if (fixture.Contains("out_timestep_scalar"))
            rows.Check($"{name}.out_timestep_scalar", () =>
            {
                var output = model.UNet.forward(fixture.Get("sample"), fixture.Get("timestep_scalar"), fixture.Get("encoder_hidden_states"), added);
                return [TensorComparison.Of("out_timestep_scalar", output, fixture.Get("out_timestep_scalar"), ParityTolerance.ModelOutput)];
            }, "0-d float timestep broadcast to the batch");

        if (Stem.Any(s => fixture.Contains($"intermediate.{s}")))
            rows.Check($"{name}.intermediate", () => CompareStem(fixture, model),
                added is null ? "time_proj, time_embedding, conv_in (block outputs are not exposed)"
                    : "time_proj, time_embedding, add_time_proj, add_embedding, conv_in (block outputs are not exposed)");
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
        if (fixture.Contains("intermediate.add_time_proj") || fixture.Contains("intermediate.add_embedding"))
        {
            var timeIds = fixture.Get("time_ids");
            var sinusoid = Module("add_time_proj").call(timeIds.flatten().to(ScalarType.Float32));
            outputs["add_time_proj"] = sinusoid;
            outputs["add_embedding"] = Module("add_embedding").call(torch.cat([fixture.Get("text_embeds"), sinusoid.reshape(timeIds.shape[0], -1)], dim: -1));
        }
        // The README's bound for the time-id sinusoid is atol 1e-4 (ids ~10³ are its least precise float32 step); the rest are model outputs.
        return Stem.Where(s => fixture.Contains($"intermediate.{s}"))
            .Select(s => TensorComparison.Of($"intermediate.{s}", outputs[s], fixture.Get($"intermediate.{s}"),
                s == "add_time_proj" ? ParityTolerance.Absolute(1e-4) : ParityTolerance.ModelOutput))
            .ToList();
    }
}
