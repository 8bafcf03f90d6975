using System.Globalization;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.BaseModel;
using SdPipeline.Config;
using SdPipeline.Files;
using SdPipeline.Images;
using SdPipeline.Lora;
using SdPipeline.Models.Shared;
using SdPipeline.Pipeline;
using SdPipeline.Runtime;
using SdPipeline.Schedulers;
using SdPipeline.Tokenization;
using SdPipeline.Training;
using SdPipeline.Weights;

namespace SdPipeline.Sampling;

/// <summary>
/// The <c>sample</c> stage: each prompt at each seed from the base model and from the fine-tuned one, from the
/// same initial noise, side by side. Every PNG carries its generation parameters in text chunks; one grid per
/// prompt shows base (top row) against fine-tuned (bottom row); all-black or constant images are flagged. After a LoRA
/// run (or with <c>sample.lora</c>, a LoRA file of either layout) the second row is the base model with the LoRA applied
/// at <c>sample.lora_scale</c>.
/// </summary>
public sealed class SampleStage : IStageRunner
{
    /// <summary>The list of samples inside the artifact.</summary>
    public const string SamplesFile = "samples.json";

    /// <summary>
    /// The version of the samples' meaning. 2: prompts are tokenized as transformers' CLIPTokenizer does by default. 3: a
    /// scheduler config's <c>_use_default_values</c> keys read as absent, an SDXL VAE's <c>latents_mean</c>/<c>latents_std</c>
    /// applied, a tokenizer folder's added tokens honoured (each as diffusers does; images of such models change).
    /// </summary>
    public const int SchemaVersion = 3;

    /// <summary>Keys that change the samples.</summary>
    public static IReadOnlyList<string> ConfigKeys { get; } = ["sample", "model.clip_skip", "model.tokenizer_cleaning", "latents.resolution"];

    /// <summary>The stage as the graph declares it: name, Cake task, schema version, config keys, upstream stages, runner.</summary>
    public static StageDefinition Definition { get; } = new StageDefinition("sample", "Sample", SchemaVersion, ConfigKeys, ["model", "download", "train"],
        "Generate images from the base and the fine-tuned weights")
    {
        ExternalInputs = ExternalInputs,
        CreateRunner = _ => new SampleStage(),
        // No LoRA is applied without sample.lora or a LoRA run to take one from.
        UnusedKeys = config => config.Typed.Sample.Lora.Length == 0 && config.Typed.Train.Method != TrainingMethods.Lora ? ["sample.lora_scale"] : [],
        CheckConfig = CheckConfig,
    };

    /// <summary>What the sample stage would refuse in <paramref name="config"/>, before anything runs.</summary>
    public static IReadOnlyList<string> CheckConfig(EffectiveConfig config)
    {
        var sample = config.Typed.Sample;
        var problems = new List<string>();
        if (sample.Prompts.Length == 0 && sample.HeldoutPrompts <= 0)
            problems.Add("no prompts; set sample.prompts (a JSON list) or sample.heldout_prompts");
        if (sample.Seeds.Length == 0)
            problems.Add("sample.seeds is empty, so no image would be made");
        if (sample.Lora.Length > 0 && PickleRefusal.IsPickle(sample.Lora))
            problems.Add($"sample.lora: {PickleRefusal.Message(sample.Lora)}");
        return problems;
    }

    /// <summary>A LoRA file named by <c>sample.lora</c> is an input by its content (its path is in the config already).</summary>
    public static IReadOnlyDictionary<string, string> ExternalInputs(StageInputContext context)
    {
        string lora = context.Config.Typed.Sample.Lora;
        if (lora.Length == 0) return new Dictionary<string, string>();
        string path = Path.GetFullPath(lora);
        if (!File.Exists(path)) throw new StageInputException($"sample.lora: file '{path}' not found (a LoRA safetensors file, or empty to sample the train stage's result)");
        return new Dictionary<string, string> { ["sample.lora"] = context.Hashes.Hash(path) };
    }

    /// <summary>
    /// The LoRA the second row applies to the base: <c>sample.lora</c>, else a LoRA run's
    /// <c>lora/pytorch_lora_weights.safetensors</c>; null after a full fine-tune.
    /// </summary>
    public static string? LoraPath(SampleSection settings, string trainFolder)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Lora.Length > 0) return Path.GetFullPath(settings.Lora);
        string trained = Path.Combine(trainFolder, TrainStage.LoraFolder, LoraFile.DiffusersFileName);
        return File.Exists(trained) ? trained : null;
    }

    /// <summary>
    /// The pipeline of <paramref name="folder"/> — <see cref="StableDiffusionXLPipeline"/> for an SDXL folder, else
    /// <see cref="StableDiffusionPipeline"/> — with the LoRA file at <paramref name="loraPath"/> applied at <paramref name="loraScale"/> when given.
    /// </summary>
    public static ITextToImagePipeline Open(DiffusersFolder folder, string? loraPath, double loraScale, TorchSharp.torch.Device device, ClipTextCleaning cleaning)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!StableDiffusionXLPipeline.IsSdxlFolder(folder))
            return loraPath is null ? StableDiffusionPipeline.FromFolder(folder, device, cleaning: cleaning) : WithLora(folder, loraPath, loraScale, device, cleaning);
        var pipeline = StableDiffusionXLPipeline.FromFolder(folder, device, cleaning: cleaning);
        if (loraPath is null) return pipeline;
        try
        {
            var encoders = pipeline.PromptEncoder;
            var (_, modules) = LoraFile.Read(loraPath, LoraNetwork.Layers(pipeline.Unet, encoders.TextEncoder, encoders.TextEncoder2).Keys);
            try
            {
                pipeline.Lora = LoraNetwork.Apply(modules, pipeline.Unet, encoders.TextEncoder, loraScale, encoders.TextEncoder2);
            }
            finally
            {
                foreach (var module in modules)
                {
                    module.Down.Dispose();
                    module.Up.Dispose();
                }
            }
            return pipeline;
        }
        catch
        {
            pipeline.Dispose();
            throw;
        }
    }

    /// <summary>Loads the base pipeline from <paramref name="baseFolder"/> and applies the LoRA file at <paramref name="path"/> at <paramref name="scale"/>.</summary>
    public static StableDiffusionPipeline WithLora(DiffusersFolder baseFolder, string path, double scale, TorchSharp.torch.Device device,
        ClipTextCleaning cleaning = ClipTextCleaning.Transformers)
    {
        var pipeline = StableDiffusionPipeline.FromFolder(baseFolder, device, cleaning: cleaning);
        try
        {
            var (_, modules) = LoraFile.Read(path, LoraNetwork.Layers(pipeline.Unet, pipeline.TextEncoder).Keys);
            try
            {
                // Attached, not merged: the update is scaled at run time as diffusers' lora_scale and kohya's multiplier do.
                pipeline.Lora = LoraNetwork.Apply(modules, pipeline.Unet, pipeline.TextEncoder, scale);
            }
            finally
            {
                foreach (var module in modules)
                {
                    module.Down.Dispose();
                    module.Up.Dispose();
                }
            }
            return pipeline;
        }
        catch
        {
            pipeline.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public JObject Run(StageWorkspace workspace)
    {
        var settings = workspace.Config.Typed.Sample;
        var runtime = workspace.Config.Typed.Runtime;
        var prompts = Prompts(workspace, settings);
        if (prompts.Count == 0)
            throw new ConfigException(settings.HeldoutPrompts > 0
                ? $"sample: no prompts: sample.prompts is empty and the dataset has no held-out items for sample.heldout_prompts={settings.HeldoutPrompts} (a small dataset, or download.heldout_fraction 0); set sample.prompts (a JSON list)"
                : "sample: no prompts; set sample.prompts (a JSON list) or sample.heldout_prompts");
        int width = settings.Width > 0 ? settings.Width : workspace.Config.Typed.Latents.Resolution;
        int height = settings.Height > 0 ? settings.Height : workspace.Config.Typed.Latents.Resolution;

        var device = TorchRuntime.Initialise(runtime.Device, runtime.Threads);
        InferenceKernels.Use(runtime.Kernels);
        var cleaning = ClipTextCleanings.Parse(workspace.Config.Typed.Model.TokenizerCleaning);
        var baseFolder = ResolvedModel.Read(workspace.FolderOf(ModelStage.Definition)).Open();
        string? lora = LoraPath(settings, workspace.FolderOf(TrainStage.Definition));
        var tunedFolder = lora is null ? DiffusersFolder.Open(Path.Combine(workspace.FolderOf(TrainStage.Definition), TrainStage.PipelineFolder)) : baseFolder;
        string sampler = settings.Sampler.Length > 0 ? settings.Sampler
            : SchedulerFactory.ShippedName(SchedulerConfig.Load(Path.Combine(baseFolder.Component("scheduler"), "scheduler_config.json")));
        bool sdxl = StableDiffusionXLPipeline.IsSdxlFolder(baseFolder);
        if (sdxl && workspace.Config.Typed.Model.ClipSkip != 0)
            throw new ConfigException($"model.clip_skip = {workspace.Config.Typed.Model.ClipSkip}: an SDXL model always conditions on both text encoders' penultimate layers; set model.clip_skip=0");
        // SDXL's default call has no negative prompt: zero embeddings under force_zeros_for_empty_prompt (diffusers' behaviour);
        // SD encodes "". A negative prompt that is set is encoded by both.
        string? negativePrompt = sdxl && settings.NegativePrompt.Length == 0 ? null : settings.NegativePrompt;

        var tokenizer = ClipTokenizer.FromFolder(baseFolder.Component("tokenizer"), cleaning);
        foreach (string prompt in prompts.Select(p => p.Prompt).Append(settings.NegativePrompt).Distinct())
            if (tokenizer.TokensCut(prompt) is > 0 and int cut)
                workspace.Log($"sample: warning: the text encoder reads {tokenizer.ModelMaxLength - 2} tokens; {cut} at the end of \"{prompt}\" are cut (diffusers cuts them too)");

        var jobs = prompts.SelectMany(p => settings.Seeds.Select(seed => (p.Prompt, p.Heldout, Seed: seed))).ToList();
        var images = new Dictionary<string, List<byte[]>>();
        using var bar = workspace.Progress.Start("sample images", jobs.Count * 2);
        foreach (var (variant, folder, fingerprint) in new[]
        {
            ("base", baseFolder, ArtifactStore.Short(Path.GetFileName(workspace.FolderOf(ModelStage.Definition)))),
            ("fine_tuned", tunedFolder, ArtifactStore.Short(Path.GetFileName(workspace.FolderOf(TrainStage.Definition)))),
        })
        {
            using var pipeline = Open(folder, variant == "fine_tuned" ? lora : null, settings.LoraScale, device, cleaning);
            // A LoRA run's adapters predict what train.prediction_type trained them to, over the base's scheduler config
            // (a full fine-tune's pipeline/ records it in its own).
            if (variant == "fine_tuned" && lora is not null && settings.Lora.Length == 0 && workspace.Config.Typed.Train.PredictionType is { Length: > 0 } trained
                && pipeline is DiffusionPipeline diffusion)
                diffusion.SchedulerConfig = diffusion.SchedulerConfig with { PredictionType = trained };
            var encoded = new List<byte[]>();
            foreach (var chunk in jobs.Chunk(Math.Max(1, settings.BatchSize)))
            {
                workspace.Cancellation.ThrowIfCancellationRequested();
                var request = new TextToImageRequest(chunk.Select(j => j.Prompt).ToList(), chunk.Select(j => j.Seed).ToList(), negativePrompt,
                    settings.GuidanceScale, settings.Steps, sampler, width, height, workspace.Config.Typed.Model.ClipSkip);
                var result = pipeline.Generate(request);
                for (int i = 0; i < chunk.Length; i++)
                {
                    var parameters = Infotext.TextChunks(request, i);
                    parameters["negative_prompt"] = settings.NegativePrompt;
                    parameters["model"] = variant;
                    parameters["model_fingerprint"] = fingerprint;
                    if (variant == "fine_tuned" && lora is not null)
                    {
                        parameters["lora"] = Path.GetFileName(lora);
                        parameters["lora_scale"] = settings.LoraScale.ToString("R", CultureInfo.InvariantCulture);
                    }
                    encoded.Add(ImageCodec.EncodePng(result.Images[i], parameters));
                }
                bar.Advance(chunk.Length);
            }
            images[variant] = encoded;
        }

        var records = new List<SampleRecord>();
        Directory.CreateDirectory(Path.Combine(workspace.Directory, "base"));
        Directory.CreateDirectory(Path.Combine(workspace.Directory, "fine_tuned"));
        Directory.CreateDirectory(Path.Combine(workspace.Directory, "grids"));
        for (int i = 0; i < jobs.Count; i++)
        {
            int promptIndex = i / settings.Seeds.Length;
            string name = $"{promptIndex:D3}-seed{jobs[i].Seed}.png";
            File.WriteAllBytes(Path.Combine(workspace.Directory, "base", name), images["base"][i]);
            File.WriteAllBytes(Path.Combine(workspace.Directory, "fine_tuned", name), images["fine_tuned"][i]);
            records.Add(new SampleRecord(jobs[i].Prompt, jobs[i].Seed, jobs[i].Heldout, $"base/{name}", $"fine_tuned/{name}",
                ImageFlags.Check(images["base"][i]), ImageFlags.Check(images["fine_tuned"][i])));
        }
        for (int p = 0; p < prompts.Count; p++)
        {
            int n = settings.Seeds.Length;
            var row = images["base"].Skip(p * n).Take(n).Concat(images["fine_tuned"].Skip(p * n).Take(n)).ToList();
            File.WriteAllBytes(Path.Combine(workspace.Directory, "grids", $"{p:D3}.png"), ImageGrid.ComposePng(row, n, padding: 2));
        }
        AtomicFile.WriteAllText(Path.Combine(workspace.Directory, SamplesFile), JsonConvert.SerializeObject(records, Formatting.Indented));

        int flagged = records.Count(r => r.FineTunedFlag is not null || r.BaseFlag is not null);
        foreach (var record in records.Where(r => r.FineTunedFlag is not null))
            workspace.Log($"sample: warning: fine-tuned image for \"{record.Prompt}\" seed {record.Seed} is {record.FineTunedFlag}");
        workspace.Log($"sample: {records.Count} prompt×seed pairs from both models ({sampler}, {settings.Steps} steps, {width}x{height}); {flagged} flagged");
        return Manifest.SummaryOf(new SampleSummary
        {
            Samples = records.Count,
            Prompts = prompts.Count,
            Sampler = sampler,
            Flagged = flagged,
            Lora = lora is null ? null : settings.Lora.Length > 0 ? lora : $"train/{TrainStage.LoraFolder}/{LoraFile.DiffusersFileName}",
            LoraScale = lora is null ? null : settings.LoraScale,
        });
    }

    /// <summary>The configured prompts, then the captions of the first held-out images.</summary>
    private static List<(string Prompt, bool Heldout)> Prompts(StageWorkspace workspace, SampleSection settings)
    {
        var prompts = settings.Prompts.Select(p => (p, false)).ToList();
        if (settings.HeldoutPrompts > 0)
            prompts.AddRange(Data.DatasetReader.Items(workspace.FolderOf(Data.DownloadStage.Definition))
                .Where(i => i.Split == Data.DatasetItem.HeldoutSplit)
                .Select(i => i.Caption).Distinct().Take(settings.HeldoutPrompts)
                .Select(caption => (caption, true)));
        return prompts;
    }
}
