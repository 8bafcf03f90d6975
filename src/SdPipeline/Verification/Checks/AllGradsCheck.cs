using SdPipeline.Schedulers;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>BASE_all_grads_step0</c>: the gradient of every UNet parameter after step 0 of the training fixture
/// <c>BASE</c> (whose inputs, target and loss settings it uses), each within 1e-4 of its abs max.
/// </summary>
internal sealed class AllGradsCheck : IParityCheck
{
    public const string Suffix = "_all_grads_step0";

    public IReadOnlyList<string> Components { get; } = [ModelComponents.Scheduler];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        string baseName = fixture.Name[..^Suffix.Length];
        rows.Check($"{fixture.Name}.grad", () =>
        {
            using var step = ParityFixture.Open(fixture.Folder, baseName);
            var settings = TrainingSettings.Read(step, model);
            using var schedule = new NoiseSchedule(settings.Schedule);
            using var unet = model.LoadUNetForTraining();
            var parameters = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var recorded = fixture.Keys.ToHashSet(StringComparer.Ordinal);
            var unknown = recorded.Where(k => !parameters.ContainsKey(k)).ToList();
            var unrecorded = parameters.Keys.Where(k => !recorded.Contains(k)).ToList();
            if (unknown.Count > 0 || unrecorded.Count > 0)
                throw new ParityFixtureException($"gradients of parameters the UNet lacks: [{string.Join(", ", unknown.Take(5))}]; " +
                    $"parameters without a recorded gradient: [{string.Join(", ", unrecorded.Take(5))}]");

            var timesteps = step.Get("step0.timesteps");
            var prediction = unet.call(step.Get("step0.noisy_latents"), timesteps, step.Get("step0.encoder_hidden_states"));
            settings.Objective(schedule).Loss(prediction, step.Get("step0.target"), timesteps).backward();
            return GradientComparison.Compare(parameters.Select(p => (p.Key, (Tensor?)p.Value.grad, fixture.Get(p.Key))).ToList());
        }, $"every parameter, inputs from {baseName}");
    }
}
