using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.BaseModel;
using SdPipeline.Config;
using SdPipeline.Files;
using SdPipeline.Latents;
using SdPipeline.Lora;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Unet;
using SdPipeline.Numerics;
using SdPipeline.Pipeline;
using SdPipeline.Runtime;
using SdPipeline.Schedulers;
using SdPipeline.SingleFileCheckpoints;
using SdPipeline.Tokenization;
using SdPipeline.Training.Optimization;
using SdPipeline.Training.Precision;
using SdPipeline.Weights;
using TorchSharp;

namespace SdPipeline.Training;

/// <summary>
/// The <c>train</c> stage: a pre-flight memory check, then <see cref="FineTuner"/> on the latent cache, then the
/// result in diffusers layout — <c>unet/</c> (the EMA weights when EMA is on), <c>text_encoder/</c> when trained,
/// and <c>pipeline/</c>, a complete model folder (the base's other components linked in) that
/// <c>StableDiffusionPipeline.from_pretrained</c> loads — beside <c>metrics.jsonl</c> and the last checkpoints.
/// With <c>train.method=lora</c> the result is the adapters alone, in <c>lora/</c>: <c>pytorch_lora_weights.safetensors</c>
/// (diffusers' <c>load_lora_weights</c>) and <c>lora_kohya.safetensors</c> (ComfyUI, AUTOMATIC1111); the sample stage
/// applies them to the base model.
/// </summary>
/// <param name="validationSamplers">
/// Makes the sampler of <c>train.validation_prompts</c>; given by the layer above (<c>ProjectStages</c>), as sampling sits
/// above training. Without one, a config with validation prompts is refused.
/// </param>
public sealed class TrainStage(Func<ValidationRequest, IValidationSampler>? validationSamplers = null) : IStageRunner
{
    /// <summary>Keys that change the result (checkpoint frequency and retention do not, nor where AdamW steps: see <see cref="FusedBackwardPass"/>).</summary>
    public static IReadOnlyList<string> ConfigKeys { get; } =
        [.. ConfigSchema.Keys.Where(k => k.Section == "train" && k.Name is not ("checkpointing_steps" or "checkpoints_total_limit" or "fused_backward_pass")).Select(k => k.Path), "model.clip_skip"];

    /// <summary>
    /// The version of the result's meaning. 2: <c>cosine</c> is one half-wave and <c>polynomial</c> ends at 1e-7, as diffusers'
    /// <c>get_scheduler</c> makes them; the EMA also steps when an fp16 step is skipped; <c>pipeline/</c> loads with a plain <c>from_pretrained</c> (components the folder does
    /// not hold are null in its <c>model_index.json</c>, a variant's weights are linked under the plain names).
    /// </summary>
    public const int SchemaVersion = 2;

    /// <summary>The stage as the graph declares it: name, Cake task, schema version, config keys, upstream stages, runner.</summary>
    public static StageDefinition Definition { get; } = new StageDefinition("train", "Train", SchemaVersion, ConfigKeys, ["model", "latents"],
        "Fine-tune the UNet on the latent cache")
    {
        CreateRunner = _ => new TrainStage(),
        UnusedKeys = UnusedKeys,
        CheckConfig = CheckConfig,
        Continuation = TrainContinuation.Judge,
    };

    /// <summary>The train keys <paramref name="config"/> leaves unused, which <see cref="StageDefinition.UnusedKeys"/> fingerprints at their defaults.</summary>
    public static IEnumerable<string> UnusedKeys(EffectiveConfig config)
    {
        var train = config.Typed.Train;
        if (train.MaxTrainSteps > 0) yield return "train.num_train_epochs";
        if (train.LrScheduler == "constant") yield return "train.lr_warmup_steps";
        if (train.LrScheduler != "cosine_with_restarts") yield return "train.lr_num_cycles";
        if (train.LrScheduler != "polynomial") yield return "train.lr_power";
        if (!train.ShuffleTags) yield return "train.keep_tags";
        if (train.ValidationPrompts.Length == 0)
        {
            yield return "train.validation_inference_steps";
            yield return "train.validation_guidance_scale";
        }
        if (train.Method != TrainingMethods.Lora)
            foreach (string key in new[] { "train.lora_rank", "train.lora_alpha", "train.lora_dropout", "train.lora_targets" }) yield return key;
        if (!train.UseEma)
            foreach (string key in new[] { "train.ema_decay", "train.ema_min_decay", "train.ema_update_after_step", "train.ema_use_warmup", "train.ema_inv_gamma", "train.ema_power", "train.ema_on_cpu" })
                yield return key;
        else if (!train.EmaUseWarmup)
        {
            yield return "train.ema_inv_gamma";
            yield return "train.ema_power";
        }
    }

    /// <summary>What the train stage would refuse in <paramref name="config"/>, before anything runs.</summary>
    public static IReadOnlyList<string> CheckConfig(EffectiveConfig config)
    {
        var train = config.Typed.Train;
        var problems = new List<string>();
        if (train.MaxTrainSteps <= 0 && train.NumTrainEpochs <= 0)
            problems.Add("neither train.max_train_steps nor train.num_train_epochs is positive, so there is nothing to train");
        if (train.LrScheduler == "polynomial" && FineTuningRun.BaseRate(train) is var rate && rate <= LrSchedules.PolynomialLrEnd)
            problems.Add($"train.lr_scheduler=polynomial decays to {LrSchedules.PolynomialLrEnd} (diffusers' lr_end), so the learning rate must be above it (now {rate}): raise train.learning_rate or pick another schedule");
        // Checkpointing recomputes each block in backward and does not restore the RNG state, as torch.utils.checkpoint does:
        // the adapters would draw other dropout masks there, and the gradients would be those of another forward than the loss's.
        if (train.Method == TrainingMethods.Lora && train.LoraDropout > 0 && train.GradientCheckpointing)
            problems.Add($"train.gradient_checkpointing recomputes each block in backward with new dropout masks, so train.lora_dropout={train.LoraDropout} would give the gradients of another forward than the loss's: set train.lora_dropout=0 or train.gradient_checkpointing=false");
        if (train.FusedBackwardPass)
        {
            // Each needs every gradient of the step before the first parameter moves, which a fused step cannot wait for.
            if (train.MaxGradNorm > 0)
                problems.Add($"train.fused_backward_pass steps each parameter before the others' gradients exist, so it cannot clip their global norm: set train.max_grad_norm=0 (now {train.MaxGradNorm}) or train.fused_backward_pass=false");
            if (train.GradientAccumulationSteps > 1)
                problems.Add($"train.fused_backward_pass steps on every micro-batch's gradients: set train.gradient_accumulation_steps=1 (now {train.GradientAccumulationSteps}) or train.fused_backward_pass=false");
            if (train.MixedPrecision == "fp16")
                problems.Add("train.fused_backward_pass cannot skip a step whose fp16 gradients overflow, which loss scaling needs: use train.mixed_precision=bf16 or no, or train.fused_backward_pass=false");
        }
        return problems;
    }

    /// <summary>The folder of the full model inside the train artifact.</summary>
    public const string PipelineFolder = "pipeline";

    /// <summary>The folder of a LoRA run's adapter files inside the train artifact.</summary>
    public const string LoraFolder = "lora";

    /// <inheritdoc />
    public JObject Run(StageWorkspace workspace)
    {
        var settings = workspace.Config.Typed.Train;
        var runtime = workspace.Config.Typed.Runtime;
        var lora = settings.Method == TrainingMethods.Lora ? LoraSettings.From(settings) : null;

        var resolvedModel = ResolvedModel.Read(workspace.FolderOf(ModelStage.Definition));
        var modelFolder = resolvedModel.Open();
        bool sdxl = SdxlStageSupport.IsSdxlFolder(modelFolder);
        if (sdxl && SdxlConditioning.Unsupported(settings) is { Count: > 0 } unsupported)
            throw new ConfigException($"train: {modelFolder.Root} is a Stable Diffusion XL model: {string.Join("; ", unsupported)}");
        string latentsFolder = workspace.FolderOf(LatentsStage.Definition);
        using var dataset = LatentDataset.Open(latentsFolder);
        if (dataset.Index.Sdxl != sdxl)
            throw new StageFailedException($"train: the latent cache {latentsFolder} was made for {(dataset.Index.Sdxl ? "an SDXL" : "an SD 1.x/2.x")} model " +
                $"but {modelFolder.Root} is {(sdxl ? "an SDXL" : "an SD 1.x/2.x")} model; run the latents stage again (sdpipe run latents --force)");
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(modelFolder.Component("scheduler"), "scheduler_config.json"));
        string predictionType = settings.PredictionType.Length > 0 ? settings.PredictionType : schedulerConfig.PredictionType;

        var device = TorchRuntime.Initialise(runtime.Device, runtime.Threads);
        InferenceKernels.Use(runtime.Kernels);
        var unet = UNet2DConditionModel.FromFolder(modelFolder);
        var textEncoder = ClipTextModel.FromPretrained(modelFolder);
        // SDXL's second encoder (OpenCLIP bigG, 695 M parameters) is loaded only when the run encodes text (the cache holds its output).
        var textEncoder2 = sdxl && SdxlConditioning.NeedsTextEncoder2(settings) ? ClipTextModelWithProjection.FromPretrained(modelFolder) : null;
        var cleaning = ClipTextCleanings.Parse(workspace.Config.Typed.Model.TokenizerCleaning);
        var tokenizer = ClipTokenizer.FromFolder(modelFolder.Component("tokenizer"), cleaning);
        var tokenizer2 = sdxl ? ClipTokenizer.FromFolder(modelFolder.Component("tokenizer_2"), cleaning) : null;
        try
        {
            // Before anything holds the layers (adapters, the optimizer): the models become autocast-ready here.
            AutocastLayers.Apply(unet);
            AutocastLayers.Apply(textEncoder);
            if (textEncoder2 is not null) AutocastLayers.Apply(textEncoder2);
            long? adapterCount = lora is null ? null : LoraNetwork.CountParameters(LoraNetwork.Targets(unet, textEncoder, lora, textEncoder2), lora.Rank);
            var estimate = Preflight(workspace, unet, [textEncoder, .. textEncoder2 is null ? Array.Empty<torch.nn.Module>() : [textEncoder2]], dataset, device, adapterCount);
            unet.to(device);
            if (settings.TrainTextEncoder || settings.CaptionDropout > 0 || settings.ShuffleTags || settings.ValidationPrompts.Length > 0) textEncoder.to(device);
            if (!settings.TrainTextEncoder) foreach (var parameter in textEncoder.parameters()) parameter.requires_grad = false;
            textEncoder2?.to(device);
            if (!settings.TrainTextEncoder) foreach (var parameter in textEncoder2?.parameters() ?? []) parameter.requires_grad = false;

            using var schedule = new NoiseSchedule(schedulerConfig);
            var models = new TrainedModels(unet, textEncoder, tokenizer, settings.TrainTextEncoder) { TextEncoder2 = textEncoder2, Tokenizer2 = tokenizer2 };
            if (lora is not null) models = WithLora(models, lora, settings);
            using var network = models.Lora;
            var autocastDtype = MixedPrecision.Parse(settings.MixedPrecision, "train.mixed_precision").AutocastDtype;
            // The self-check covers every model that runs (the text encoder too when it trains or encodes shuffled captions each
            // step) in every dtype the step computes in.
            var numerics = NumericsGuard.Ensure(OperationInventory.Of(models.TrainsTextEncoder || settings.ShuffleTags
                    ? [unet, textEncoder, .. textEncoder2 is null ? Array.Empty<torch.nn.Module>() : [textEncoder2]]
                    : [unet]), device,
                autocastDtype is { } half ? [torch.ScalarType.Float32, half] : [torch.ScalarType.Float32], runtime.Onednn, workspace.Log,
                TrainingConvolutions.OneDnnOffReason(unet.Config, autocast: autocastDtype is not null));
            using var captions = sdxl ? null : CaptionAugmentation.Create(settings, textEncoder, tokenizer, workspace.Config.Typed.Model.ClipSkip, device);
            using var sdxlCaptions = textEncoder2 is null ? null : SdxlCaptionAugmentation.Create(settings, new SdxlTextEncoders(textEncoder, textEncoder2), tokenizer, tokenizer2!, device);
            using var validation = ValidationSampler(workspace, modelFolder, predictionType, device);
            string? continueFrom = workspace.ContinueFrom is { } earlier ? TrainContinuation.Prepare(workspace.Directory, earlier) : null;
            if (continueFrom is not null) workspace.Log($"train: {workspace.ContinueFrom!.Describe()}: a finished run of the same config but its step count");
            var tuner = new FineTuner(settings, models, dataset, schedule, predictionType, workspace.Config.Typed.Model.ClipSkip, device,
                workspace.Directory, workspace.Log, workspace.Progress, workspace.Cancellation)
            {
                CaptionAugmentation = captions,
                Sdxl = sdxl ? new SdxlConditioning(settings.TrainTextEncoder ? new SdxlTextEncoders(textEncoder, textEncoder2!) : null) { CaptionAugmentation = sdxlCaptions } : null,
                Validation = validation is null ? null : new ValidationPass(validation, settings.Seed, workspace.Directory, workspace.Log),
                ContinueFrom = continueFrom,
            };
            var outcome = tuner.Run(resume: workspace.Resuming);

            var files = network is not null ? ExportLora(workspace.Directory, network, models.Unet, sdxl, sd2: !sdxl && SingleFileExporter.FamilyOf(textEncoder.Config) == SingleFileFamily.StableDiffusion2) : null;
            if (network is null)
            {
                Export(workspace.Directory, modelFolder, models, predictionType);
                SingleFileDeliverable.Write(workspace.Directory, modelFolder, predictionType, settings.ExportDtype);
            }
            workspace.Log($"train: {outcome.Steps} steps, final loss {outcome.FinalLoss:0.0000}" +
                (outcome.Heldout is { } h ? $", held-out {h.Loss:0.0000} (caption-shuffle gap {h.ShuffledLoss - h.Loss:+0.0000;-0.0000;0.0000})" : "") +
                (outcome.MedianStepSeconds is { } s ? $", {s:0.000} s/step" : ""));
            return Manifest.SummaryOf(new TrainSummary
            {
                Steps = outcome.Steps,
                ResumedFromStep = outcome.ResumedFromStep,
                ContinuedFrom = continueFrom is null ? null : new ContinuedRun(workspace.ContinueFrom!.Fingerprint, workspace.ContinueFrom.Position),
                FinalLoss = outcome.FinalLoss,
                HeldoutLoss = outcome.Heldout?.Loss,
                HeldoutLossShuffled = outcome.Heldout?.ShuffledLoss,
                MedianStepSeconds = outcome.MedianStepSeconds,
                SkippedSteps = outcome.SkippedSteps,
                PeakMemoryBytes = outcome.PeakMemoryBytes,
                MemoryEstimate = estimate.ToJson(),
                PredictionType = predictionType,
                TrainableParameters = models.Parameters().Sum(p => p.Parameter.NumberOfElements),
                Device = device.ToString(),
                Numerics = numerics.ToJson(),
                Method = settings.Method,
                Lora = lora is null || network is null ? null : new LoraSummary(lora.Rank, lora.Alpha, lora.Dropout, settings.LoraTargets, lora.TextEncoder,
                    network.Modules.Count,
                    unet.parameters().Sum(p => p.NumberOfElements) + (lora.TextEncoder ? textEncoder.parameters().Sum(p => p.NumberOfElements) : 0)
                        + (lora.TextEncoder ? textEncoder2?.parameters().Sum(p => p.NumberOfElements) ?? 0 : 0),
                    files!),
            });
        }
        finally
        {
            unet.Dispose();
            textEncoder.Dispose();
            textEncoder2?.Dispose();
        }
    }

    /// <summary>The sampler of <c>train.validation_prompts</c> (one image per prompt at <c>train.seed</c>, <c>latents.resolution</c> square), or null when there are none.</summary>
    private IValidationSampler? ValidationSampler(StageWorkspace workspace, DiffusersFolder modelFolder, string predictionType, torch.Device device)
    {
        var settings = workspace.Config.Typed.Train;
        if (settings.ValidationPrompts.Length == 0) return null;
        if (validationSamplers is null)
            throw new InvalidOperationException("train.validation_prompts is set but this train stage was made without a validation sampler (ProjectStages gives it one)");
        int size = workspace.Config.Typed.Latents.Resolution;
        return validationSamplers(new ValidationRequest(settings.ValidationPrompts, settings.Seed, settings.ValidationInferenceSteps, settings.ValidationGuidanceScale,
            size, size, workspace.Config.Typed.Model.ClipSkip, modelFolder, predictionType, device));
    }

    /// <summary>
    /// Freezes the models and attaches fresh adapters (seeded by train.seed); under mixed precision the frozen UNet's
    /// linear and convolution weights are stored in the autocast dtype.
    /// </summary>
    private static TrainedModels WithLora(TrainedModels models, LoraSettings lora, TrainSection settings)
    {
        foreach (var parameter in models.Unet.parameters()) parameter.requires_grad = false;
        foreach (var parameter in models.TextEncoder.parameters()) parameter.requires_grad = false;
        foreach (var parameter in models.TextEncoder2?.parameters() ?? []) parameter.requires_grad = false;
        var precision = MixedPrecision.Parse(settings.MixedPrecision, "train.mixed_precision");
        if (precision.AutocastDtype is { } dtype) LoraNetwork.StoreFrozenWeights(models.Unet, dtype);
        var network = LoraNetwork.Create(models.Unet, models.TrainsTextEncoder ? models.TextEncoder : null, lora, settings.Seed,
            models.TrainsTextEncoder ? models.TextEncoder2 : null);
        return models with { Lora = network, HalfPrecisionBase = precision.AutocastDtype is not null };
    }

    /// <summary>Writes the adapters in both layouts into <c>lora/</c>; returns file name → size in bytes.</summary>
    /// <remarks>The kohya file names an SDXL UNet's layers in the original block numbering, as kohya's SDXL trainer does.</remarks>
    private static Dictionary<string, long> ExportLora(string folder, LoraNetwork network, UNet2DConditionModel unet, bool sdxl, bool sd2)
    {
        string target = Path.Combine(folder, LoraFolder);
        Directory.CreateDirectory(target);
        var weights = network.ToWeights();
        LoraFile.Write(Path.Combine(target, LoraFile.DiffusersFileName), weights, LoraLayout.Diffusers, sdxl);
        var originalUnetNames = sdxl ? OriginalUnetNumbering.Of(LoraNetwork.UnetLayerPaths(unet)) : null;
        LoraFile.Write(Path.Combine(target, LoraFile.KohyaFileName), weights, LoraLayout.Kohya, sdxl, originalUnetNames, sd2);
        return new[] { LoraFile.DiffusersFileName, LoraFile.KohyaFileName }.ToDictionary(name => name, name => new FileInfo(Path.Combine(target, name)).Length);
    }

    private static MemoryEstimate Preflight(StageWorkspace workspace, UNet2DConditionModel unet, IReadOnlyList<torch.nn.Module> textEncoders, LatentDataset dataset, torch.Device device, long? loraParameters)
    {
        var settings = workspace.Config.Typed.Train;
        var latentShape = LargestLatent(dataset);
        bool cuda = device.type == DeviceType.CUDA;
        var estimate = MemoryEstimate.For(unet.Config, unet.parameters().Sum(p => p.NumberOfElements), textEncoders.Sum(e => e.parameters().Sum(p => p.NumberOfElements)),
            settings.TrainTextEncoder, settings.TrainBatchSize, latentShape.Height, latentShape.Width, settings.MixedPrecision,
            settings.GradientCheckpointing, settings.UseEma, settings.EmaOnCpu, cuda, loraParameters, settings.FusedBackwardPass);
        long? available = AvailableMemory.Bytes(workspace.Config.Typed.Runtime.MemoryLimitGb, cuda);
        AtomicFile.WriteAllText(Path.Combine(workspace.Directory, "preflight.json"), new JObject
        {
            ["estimate"] = estimate.ToJson(),
            ["available_gib"] = available is { } a ? MemoryEstimate.Gib(a) : null,
            ["batch_size"] = settings.TrainBatchSize,
            ["latent_size"] = $"{latentShape.Width}x{latentShape.Height}",
        }.ToString(Formatting.Indented));
        workspace.Log($"train: pre-flight memory estimate {estimate}" + (available is { } free ? $"; available {MemoryEstimate.Gib(free):0.00} GiB" : "; available memory unknown"));
        if (available is { } limit && estimate.Total > limit)
            throw new ConfigException(Refusal(estimate, limit, settings));
        return estimate;
    }

    private static string Refusal(MemoryEstimate estimate, long available, TrainSection settings)
    {
        var options = new List<string>();
        if (!settings.GradientCheckpointing && estimate.Activations > 0) options.Add("--set train.gradient_checkpointing=true (activations)");
        if (settings.TrainBatchSize > 1) options.Add($"--set train.train_batch_size={Math.Max(1, settings.TrainBatchSize / 2)} with train.gradient_accumulation_steps={settings.GradientAccumulationSteps * 2} (activations)");
        if (settings.MixedPrecision == "no") options.Add("--set train.mixed_precision=bf16 or fp16 (activations)");
        if (settings.UseEma && estimate.Ema > 0) options.Add("--set train.ema_on_cpu=true or train.use_ema=false (EMA)");
        if (settings.TrainTextEncoder) options.Add("--set train.train_text_encoder=false (its gradients and optimizer state)");
        if (settings.Method == TrainingMethods.Full) options.Add("--set train.method=lora (gradients and optimizer state for small adapters only)");
        return $"train: the run needs an estimated {estimate} but {MemoryEstimate.Gib(available):0.00} GiB is available " +
            $"(runtime.memory_limit_gb, or what the device reports). Try: {(options.Count > 0 ? string.Join("; ", options) : "a smaller model or a device with more memory")}.";
    }

    private static (int Width, int Height) LargestLatent(LatentDataset dataset)
    {
        var buckets = dataset.Index.Rows.Select(r => r.Bucket).Distinct().Select(b => b.Split('x').Select(int.Parse).ToArray());
        var largest = buckets.OrderByDescending(b => b[0] * b[1]).First();
        string shard = dataset.Index.Rows.First(r => r.Bucket == $"{largest[0]}x{largest[1]}").Shard;
        using var file = SafeTensorsFile.Open(Path.Combine(dataset.Folder, shard));
        var shape = file.Entry("mean").Shape;
        return ((int)shape[3], (int)shape[2]);
    }

    private static void Export(string folder, DiffusersFolder baseModel, TrainedModels models, string predictionType)
    {
        models.Unet.Save(Path.Combine(folder, "unet"));
        if (models.TrainsTextEncoder)
            models.TextEncoder.Save(Path.Combine(folder, "text_encoder"), models.Tokenizer.StartOfTextId, models.Tokenizer.EndOfTextId, models.Tokenizer.PadId);

        // A complete diffusers folder: the trained components, and the base's others linked (not copied: the VAE
        // and text encoder of SD 1.5 are 800 MB and already on disk in the model stage's folder or the Hub cache).
        string pipeline = Path.Combine(folder, PipelineFolder);
        if (Directory.Exists(pipeline)) Directory.Delete(pipeline, recursive: true);
        Directory.CreateDirectory(pipeline);
        string[] components = SdxlStageSupport.IsSdxlFolder(baseModel)
            ? ["unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"]
            : ["unet", "vae", "text_encoder", "tokenizer"];
        var index = PipelineFolderExport.ModelIndex(baseModel.ModelIndex(), [.. components, "scheduler"]);
        AtomicFile.WriteAllText(Path.Combine(pipeline, "model_index.json"), index.ToString(Formatting.Indented) + "\n");
        foreach (string component in components)
        {
            if (Directory.Exists(Path.Combine(folder, component)))
                Directory.CreateSymbolicLink(Path.Combine(pipeline, component), Path.Combine("..", component));
            else
                PipelineFolderExport.LinkComponent(baseModel.Component(component), Path.Combine(pipeline, component), baseModel.Variant);
        }
        // The scheduler config records what the UNet now predicts. (diffusers' script keeps the base's config even
        // after --prediction_type changed the training target, and the saved pipeline then samples wrongly.)
        var scheduler = PipelineFolderExport.SchedulerConfig(baseModel.ComponentJson("scheduler", "scheduler_config.json"), predictionType);
        Directory.CreateDirectory(Path.Combine(pipeline, "scheduler"));
        AtomicFile.WriteAllText(Path.Combine(pipeline, "scheduler", "scheduler_config.json"), scheduler.ToString(Formatting.Indented) + "\n");
    }
}
