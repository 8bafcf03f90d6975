using AdamW = SdPipeline.Training.Optimization.AdamW;
using SdPipeline.Models.Unet;
using SdPipeline.Schedulers;
using SdPipeline.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Verification.Checks;

/// <summary>
/// <c>train_step_*</c>: consecutive steps of diffusers' <c>train_text_to_image.py</c> on the model's UNet. Per step,
/// from the recorded inputs: the noisy latents and target (<c>add_noise</c>, <c>get_velocity</c>, SNR weights), the
/// UNet prediction (train mode), the loss, the gradients of the tracked parameters and the global gradient norm
/// after backward, and the tracked parameters after an AdamW step with the sidecar's hyperparameters. The noising,
/// the loss and the optimizer are the trainer's own (<see cref="TrainingObjective"/>, <see cref="AdamW"/>).
/// Step k + 1 starts from our parameters after step k, as the script does.
/// </summary>
internal sealed class TrainStepCheck : IParityCheck
{
    public IReadOnlyList<string> Components { get; } = [ModelComponents.Scheduler];

    public void Run(ParityFixture fixture, ModelComponents model, ParityRows rows)
    {
        string name = fixture.Name;
        var settings = TrainingSettings.Read(fixture, model);
        using var schedule = new NoiseSchedule(settings.Schedule);
        var objective = settings.Objective(schedule);
        using var unet = model.LoadUNetForTraining();
        var parameters = unet.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (string tracked in settings.Tracked)
            if (!parameters.ContainsKey(tracked))
                throw new ParityFixtureException($"the sidecar tracks '{tracked}', which the UNet does not have");

        if (settings.Tracked.Any(t => fixture.Contains($"param_before.{t}")))
            rows.Check($"{name}.param_before", () =>
                [.. settings.Tracked.Where(t => fixture.Contains($"param_before.{t}"))
                    .Select(t => TensorComparison.Of(t, parameters[t], fixture.Get($"param_before.{t}"), ParityTolerance.Exact))],
                "the model's weights are the fixture's");

        using var optimizer = settings.Optimizer is { } adam
            ? new AdamW(unet.named_parameters().Select(p => (p.name, p.parameter)), adam.Beta1, adam.Beta2, adam.WeightDecay, adam.Eps)
            : null;
        for (int step = 0; fixture.Contains($"step{step}.noisy_latents"); step++)
        {
            if (step > 0 && optimizer is null)
            {
                rows.Add(ParityRow.CannotInterpret($"{name}.step{step}", $"{settings.OptimizerProblem}, so the parameters step {step} starts from are unknown"));
                break;
            }
            bool ran = false;
            rows.Run($"{name}.step{step}", () =>
            {
                RunStep(fixture, $"step{step}", settings, objective, unet, parameters, optimizer, rows);
                ran = true;
            });
            if (!ran) break;
        }
    }

    private static void RunStep(ParityFixture fixture, string step, TrainingSettings settings, TrainingObjective objective, UNet2DConditionModel unet,
        Dictionary<string, Parameter> parameters, AdamW? optimizer, ParityRows rows)
    {
        using var scope = NewDisposeScope();
        string check = $"{fixture.Name}.{step}";
        var timesteps = fixture.Get($"{step}.timesteps");
        var noisyLatents = fixture.Get($"{step}.noisy_latents");
        var target = fixture.Get($"{step}.target");

        // What the script computes before the UNet, from the recorded latents and noise.
        if (fixture.Contains($"{step}.latents") && fixture.Contains($"{step}.noise"))
            rows.Check($"{check}.target", () =>
            {
                var latents = fixture.Get($"{step}.latents");
                var noise = fixture.Get($"{step}.noise");
                var ours = objective.Build(latents, noise, noise, timesteps);
                var comparisons = new List<TensorComparison>
                {
                    TensorComparison.Of("noisy_latents", ours.NoisyLatents, noisyLatents, ParityTolerance.SchedulerLoop),
                    TensorComparison.Of("target", ours.Target, target, ParityTolerance.SchedulerLoop),
                };
                if (settings.SnrGamma is not null && fixture.Contains($"{step}.snr"))
                {
                    var (snr, weights) = objective.MinSnrWeights(timesteps);
                    comparisons.Add(TensorComparison.Of("snr", snr, fixture.Get($"{step}.snr"), ParityTolerance.SchedulerTable));
                    if (fixture.Contains($"{step}.mse_loss_weights"))
                        comparisons.Add(TensorComparison.Of("mse_loss_weights", weights, fixture.Get($"{step}.mse_loss_weights"), ParityTolerance.SchedulerTable));
                }
                return comparisons;
            }, settings.SnrGamma is { } g ? $"{settings.PredictionType}, min-SNR γ {g}" : settings.PredictionType);

        // The UNet and the loss from the recorded noisy latents and target, so a schedule error does not spread here.
        // SDXL's step also feeds the pooled text embedding and the time ids (train_text_to_image_sdxl.py's unet_added_conditions).
        var added = fixture.Contains($"{step}.time_ids") ? new AddedConditions(fixture.Get($"{step}.text_embeds"), fixture.Get($"{step}.time_ids")) : null;
        var prediction = added is null
            ? unet.call(noisyLatents, timesteps, fixture.Get($"{step}.encoder_hidden_states"))
            : unet.forward(noisyLatents, timesteps, fixture.Get($"{step}.encoder_hidden_states"), added);
        rows.Check($"{check}.model_pred", () =>
            [TensorComparison.Of("model_pred", prediction, fixture.Get($"{step}.model_pred"), ParityTolerance.ModelOutput)], "train mode");
        var loss = objective.Loss(prediction, target, timesteps);
        rows.Check($"{check}.loss", () => [TensorComparison.Of("loss", loss, fixture.Get($"{step}.loss"), ParityTolerance.Loss)]);

        loss.backward();
        rows.Check($"{check}.grad", () =>
        {
            var comparisons = GradientComparison.Compare(settings.Tracked.Where(t => fixture.Contains($"{step}.grad.{t}"))
                .Select(t => (t, (Tensor?)parameters[t].grad, fixture.Get($"{step}.grad.{t}"))).ToList());
            if (fixture.Contains($"{step}.grad_norm"))
            {
                var norm = torch.stack(parameters.Values.Where(p => p.grad is not null).Select(p => p.grad!.pow(2).sum()).ToArray()).sum().sqrt();
                comparisons.Add(TensorComparison.Of("grad_norm", norm, fixture.Get($"{step}.grad_norm"), ParityTolerance.GradientNorm));
            }
            return comparisons;
        }, "tracked parameters after backward");

        if (optimizer is null)
        {
            rows.Add(ParityRow.CannotInterpret($"{check}.param_after", settings.OptimizerProblem ?? "no optimizer"));
            return;
        }
        optimizer.Step(settings.Optimizer!.LearningRate);
        optimizer.ZeroGrad();
        if (settings.Tracked.Any(t => fixture.Contains($"{step}.param_after.{t}")))
            rows.Check($"{check}.param_after", () => CompareParametersAfter(fixture, step, settings, parameters),
                $"the trainer's AdamW, lr {settings.Optimizer!.LearningRate:0.###e0}");
    }

    // One comparison over every tracked element: the README allows 0.1 % of all of them to take the step with the
    // other sign (their gradient being float noise), which a per-tensor count would refuse in small tensors.
    private static List<TensorComparison> CompareParametersAfter(ParityFixture fixture, string step, TrainingSettings settings, Dictionary<string, Parameter> parameters)
    {
        var names = settings.Tracked.Where(t => fixture.Contains($"{step}.param_after.{t}")).ToList();
        var ours = torch.cat(names.Select(t => parameters[t].detach().flatten()).ToArray());
        var reference = torch.cat(names.Select(t => fixture.Get($"{step}.param_after.{t}").flatten()).ToArray());
        return [TensorComparison.Of($"param_after ({names.Count} tensors)", ours, reference, ParityTolerance.ParameterAfterStep(settings.Optimizer!.LearningRate))];
    }
}
