using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;
using SdPipeline.Training;
using SdPipeline.Weights;
using TorchSharp;
using AdamW = SdPipeline.Training.Optimization.AdamW;

namespace SdPipeline.Tests.Training;

/// <summary>Saving a checkpoint in the middle of a long run, on the tiny model's UNet and text encoder.</summary>
public sealed class TrainingCheckpointTests
{
    [Test]
    public void Save_Should_LeaveNoTensorBehind_AndRestoreTheSameState()
    {
        // Given a full fine-tune's state after one AdamW step: moments for the UNet and text encoder, an EMA, the generator
        using var temp = new TempFolder();
        var folder = DiffusersFolder.Open(Path.Combine(RepoPaths.Fixtures, "tiny-sd"));
        using var unet = UNet2DConditionModel.FromFolder(folder);
        using var textEncoder = ClipTextModel.FromPretrained(folder);
        var models = new TrainedModels(unet, textEncoder, ClipTokenizer.FromFolder(folder.Component("tokenizer")), TrainsTextEncoder: true);
        var parameters = models.Parameters();
        using var optimizer = new AdamW(parameters, 0.9, 0.999, 1e-2, 1e-8);
        foreach (var (_, parameter) in parameters) parameter.grad = torch.ones_like(parameter);
        optimizer.Step(1e-3);
        optimizer.ZeroGrad();
        using var ema = new EmaModel(parameters.Where(p => p.Name.StartsWith("unet.", StringComparison.Ordinal)), new EmaSettings(), torch.CPU);
        using var generator = new torch.Generator(7);
        var progress = new TrainingProgress(1, 0, 1, 1, 1, null);
        string checkpoints = temp.File("checkpoints");

        // When it is saved at every checkpointing step of a run
        static long Live() => DisposeScopeManager.Statistics.TensorStatistics.CreatedOutsideScopeCount
            - DisposeScopeManager.Statistics.TensorStatistics.DisposedOutsideScopeCount;
        TrainingCheckpoint.Save(checkpoints, progress, models, optimizer, ema, generator, keep: 2);
        long before = Live();
        for (int step = 2; step <= 4; step++)
            TrainingCheckpoint.Save(checkpoints, progress with { Step = step }, models, optimizer, ema, generator, keep: 2);

        // Then no save left a tensor for the garbage collector: on CUDA each would be a host copy of the optimizer's moments,
        // twice the trained weights' size, held until a collection happens to run
        Assert.That(Live() - before, Is.Zero);

        // And the newest two are kept, and the last one holds the moments the optimizer has
        Assert.That(TrainingCheckpoint.ByStep(checkpoints).Select(Path.GetFileName), Is.EqualTo(new[] { "checkpoint-000003", "checkpoint-000004" }));
        using var state = SafeTensorsFile.Open(Path.Combine(TrainingCheckpoint.Latest(checkpoints)!, "training_state.safetensors"));
        foreach (var (name, tensor) in optimizer.StateTensors())
            Assert.That(state.Bytes(state.Entry(name)).ToArray(), Is.EqualTo(tensor.bytes.ToArray()), name);
    }
}
