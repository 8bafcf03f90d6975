using SdPipeline.Training.Precision;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// One validation pass inside the training loop, as diffusers' <c>train_text_to_image.py</c> runs <c>log_validation</c>:
/// the models in eval mode, the EMA weights swapped in when EMA is on (<c>ema_unet.store</c>, <c>copy_to</c>, then
/// <c>restore</c>), the autocast region of the run's mixed precision. Everything is put back exactly afterwards (the
/// trained weights are restored from copies, bit for bit), and the sampler draws from its own seeded generators, so
/// a run with validation ends with the same weights as one without.
/// </summary>
public sealed class ValidationPass(IValidationSampler sampler, long seed, string runFolder, Action<string> log)
{
    /// <summary>Samples every prompt from the weights of <paramref name="step"/> and writes the images.</summary>
    public void Run(long step, TrainedModels models, EmaModel? ema, IReadOnlyList<(string Name, Parameter Parameter)> emaParameters,
        MixedPrecision precision, TensorBoardLog? tensorBoard)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        bool unetTraining = models.Unet.training, textTraining = models.TextEncoder.training, text2Training = models.TextEncoder2?.training ?? false;
        models.Unet.eval();
        models.TextEncoder.eval();
        models.TextEncoder2?.eval();
        var stored = ema is null ? null : Store(emaParameters);
        IReadOnlyList<byte[]> images;
        try
        {
            ema?.CopyTo(emaParameters);
            using (precision.EnterAutocast())
                images = sampler.Sample(models);
        }
        finally
        {
            if (stored is not null) Restore(emaParameters, stored);
            if (unetTraining) models.Unet.train();
            if (textTraining) models.TextEncoder.train();
            if (text2Training) models.TextEncoder2!.train();
        }
        ValidationImages.Write(runFolder, step, sampler.Prompts, seed, images, tensorBoard);
        log($"train: step {step}: {images.Count} validation image{(images.Count == 1 ? "" : "s")} in {ValidationImages.FolderName}/ ({clock.Elapsed.TotalSeconds:0.0} s)");
    }

    private static List<Tensor> Store(IReadOnlyList<(string Name, Parameter Parameter)> parameters)
    {
        using var noGrad = torch.no_grad();
        return parameters.Select(p => p.Parameter.detach().clone().DetachFromDisposeScope()).ToList();
    }

    private static void Restore(IReadOnlyList<(string Name, Parameter Parameter)> parameters, List<Tensor> stored)
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < parameters.Count; i++)
        {
            parameters[i].Parameter.copy_(stored[i]);
            stored[i].Dispose();
        }
    }
}
