using Newtonsoft.Json;
using SdPipeline.Files;
using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Unet;
using SdPipeline.Pipeline;
using SdPipeline.Tokenization;
using SdPipeline.Training.Optimization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Training;

/// <summary>
/// Training checkpoints: <c>checkpoints/checkpoint-NNNNNN/</c> with the UNet in diffusers layout (it loads in
/// diffusers), the EMA weights (<c>unet_ema/</c>) and text encoder when present, and the training state
/// (<c>training_state.safetensors</c>: AdamW moments and the generator state; <c>training_state.json</c>: the
/// position). Each is built in a temporary folder and renamed; <c>training_state.json</c> is written last and
/// marks it complete. Only the newest <c>keep</c> are kept. A LoRA run saves only its adapters
/// (<c>pytorch_lora_weights.safetensors</c>, diffusers' layout, and <c>lora_ema.safetensors</c>): the base is frozen.
/// </summary>
public static class TrainingCheckpoint
{
    private const string StateJson = "training_state.json";
    private const string StateTensors = "training_state.safetensors";
    private const string LoraEma = "lora_ema.safetensors";

    /// <summary>The folder of step <paramref name="step"/>'s checkpoint.</summary>
    public static string Folder(string checkpoints, long step) => Path.Combine(checkpoints, $"checkpoint-{step:D6}");

    /// <summary>Writes a checkpoint and prunes old ones; returns its folder.</summary>
    public static string Save(string checkpoints, TrainingProgress progress, TrainedModels models, AdamW optimizer, EmaModel? ema, Generator generator, int keep)
    {
        string final = Folder(checkpoints, progress.Step);
        RemoveLeftovers(checkpoints);
        string temp = Path.Combine(checkpoints, $".tmp-checkpoint-{progress.Step:D6}-{Environment.ProcessId}");
        Directory.CreateDirectory(temp);

        if (models.Lora is { } lora)
        {
            LoraFile.Write(Path.Combine(temp, LoraFile.DiffusersFileName), lora.ToWeights(), LoraLayout.Diffusers);
            if (ema is not null) SafeTensorsWriter.Write(Path.Combine(temp, LoraEma), ema.Shadow);
        }
        else
            SaveFull(temp, models, ema);

        var tensors = optimizer.StateTensors();
        using var generatorState = generator.get_state();
        tensors["generator_state"] = generatorState;
        SafeTensorsWriter.Write(Path.Combine(temp, StateTensors), tensors,
            new Dictionary<string, string> { ["optimizer_steps"] = optimizer.StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        AtomicFile.WriteAllText(Path.Combine(temp, StateJson), JsonConvert.SerializeObject(progress, Formatting.Indented));

        // On disk before the rename: after a power loss a checkpoint-N folder must never hold empty tensors.
        Durability.FlushFolder(temp);
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(temp, final);
        Durability.FlushDirectoryEntry(checkpoints);
        Prune(checkpoints, keep);
        return final;
    }

    /// <summary>The newest complete checkpoint, or null.</summary>
    public static string? Latest(string checkpoints) =>
        Directory.Exists(checkpoints)
            ? ByStep(checkpoints).Where(d => File.Exists(Path.Combine(d, StateJson))).LastOrDefault()
            : null;

    /// <summary>
    /// The <c>checkpoint-N</c> folders in step order. By number, not by name: past 999,999 steps the name
    /// gains a digit and "checkpoint-1000000" sorts before "checkpoint-999999".
    /// </summary>
    public static IReadOnlyList<string> ByStep(string checkpoints) =>
        Directory.EnumerateDirectories(checkpoints, "checkpoint-*")
            .Select(d => (Folder: d, Step: long.TryParse(Path.GetFileName(d)["checkpoint-".Length..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long step) ? step : -1))
            .Where(c => c.Step >= 0)
            .OrderBy(c => c.Step)
            .Select(c => c.Folder)
            .ToList();

    /// <summary>
    /// Removes the temporary folders of checkpoints a killed process was writing. Only one process trains a
    /// fingerprint at a time (the store's lock), so every such folder here is a leftover.
    /// </summary>
    public static void RemoveLeftovers(string checkpoints)
    {
        if (!Directory.Exists(checkpoints)) return;
        foreach (string leftover in Directory.EnumerateDirectories(checkpoints, ".tmp-checkpoint-*"))
            Directory.Delete(leftover, recursive: true);
    }

    /// <summary>Restores weights, optimizer, EMA and generator from <paramref name="folder"/>; returns the position.</summary>
    /// <exception cref="StageFailedException">A file of the checkpoint cannot be read; the message says which folder to delete.</exception>
    public static TrainingProgress Load(string folder, TrainedModels models, AdamW optimizer, EmaModel? ema, Generator generator)
    {
        try
        {
            return LoadFiles(folder, models, optimizer, ema, generator);
        }
        catch (Exception e) when (e is WeightsException or InvalidDataException or JsonException or KeyNotFoundException or FormatException)
        {
            // Checkpoints are renamed into place whole, so this is damage after the fact (a disk, a hand): the one before may be
            // whole. (Other I/O errors, such as too many open files, say nothing about the checkpoint and pass unchanged.)
            throw new StageFailedException($"train: the checkpoint {folder} cannot be read: {e.Message}. Delete that checkpoint folder: " +
                "a run resumes from the checkpoint before it, and one continuing a finished run then starts over", e);
        }
    }

    private static TrainingProgress LoadFiles(string folder, TrainedModels models, AdamW optimizer, EmaModel? ema, Generator generator)
    {
        var progress = JsonConvert.DeserializeObject<TrainingProgress>(File.ReadAllText(Path.Combine(folder, StateJson)))
            ?? throw new InvalidDataException($"{folder}: empty training state");
        if (models.Lora is { } lora)
        {
            using var adapters = SafeTensorsFile.Open(Path.Combine(folder, LoraFile.DiffusersFileName));
            foreach (var (name, parameter) in lora.Parameters()) adapters.CopyInto(name, parameter);
        }
        else
        {
            StateDictLoader.Load(models.Unet, [Path.Combine(folder, "unet", "diffusion_pytorch_model.safetensors")]);
            if (models.TrainsTextEncoder)
                StateDictLoader.Load(models.TextEncoder, [Path.Combine(folder, "text_encoder", "model.safetensors")]);
        }
        using (var file = SafeTensorsFile.Open(Path.Combine(folder, StateTensors)))
        {
            var tensors = file.ReadAll();
            optimizer.LoadState(tensors, long.Parse(file.Metadata["optimizer_steps"], System.Globalization.CultureInfo.InvariantCulture));
            generator.set_state(tensors["generator_state"]);
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
        if (ema is not null)
        {
            bool adapters = models.Lora is not null;
            using var file = SafeTensorsFile.Open(adapters ? Path.Combine(folder, LoraEma) : Path.Combine(folder, "unet_ema", "diffusion_pytorch_model.safetensors"));
            var shadow = file.ReadAll();
            ema.Load(shadow.ToDictionary(p => adapters ? p.Key : "unet." + p.Key, p => p.Value), progress.EmaSteps);
            foreach (var tensor in shadow.Values) tensor.Dispose();
        }
        return progress;
    }

    private static void SaveFull(string temp, TrainedModels models, EmaModel? ema)
    {
        models.Unet.Save(Path.Combine(temp, "unet"));
        if (ema is not null)
        {
            Directory.CreateDirectory(Path.Combine(temp, "unet_ema"));
            File.Copy(Path.Combine(temp, "unet", "config.json"), Path.Combine(temp, "unet_ema", "config.json"));
            SafeTensorsWriter.Write(Path.Combine(temp, "unet_ema", "diffusion_pytorch_model.safetensors"), ema.Shadow.Where(p => p.Key.StartsWith("unet.", StringComparison.Ordinal))
                .ToDictionary(p => p.Key["unet.".Length..], p => p.Value));
        }
        if (models.TrainsTextEncoder)
            models.TextEncoder.Save(Path.Combine(temp, "text_encoder"), models.Tokenizer.StartOfTextId, models.Tokenizer.EndOfTextId, models.Tokenizer.PadId);
    }

    private static void Prune(string checkpoints, int keep)
    {
        if (keep <= 0) return;
        var complete = ByStep(checkpoints);
        foreach (string old in complete.Take(Math.Max(0, complete.Count - keep)))
            Directory.Delete(old, recursive: true);
    }
}
