using System.Diagnostics;
using System.Runtime.InteropServices;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.BaseModel;
using SdPipeline.Config;
using SdPipeline.Data;
using SdPipeline.Files;
using SdPipeline.Images;
using SdPipeline.Models.Clip;
using SdPipeline.Models.Shared;
using SdPipeline.Models.Vae;
using SdPipeline.Pipeline;
using SdPipeline.Runtime;
using SdPipeline.Tokenization;
using SdPipeline.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Latents;

/// <summary>
/// The <c>latents</c> stage: preprocesses every image as diffusers' training script does (see
/// <see cref="ImagePreprocessor"/>), encodes it with the VAE (the posterior's mean and std, not one sample)
/// and its caption with the frozen text encoder, and writes shards plus <c>index.json</c>. Shards are
/// written whole and renamed into place; a rerun after an interruption keeps the finished ones.
/// </summary>
public sealed class LatentsStage : IStageRunner
{
    /// <summary>
    /// The version of the cache's meaning. 2: captions are tokenized as transformers' CLIPTokenizer does by default
    /// (version 1 caches hold OpenAI-cleaned ids, which differ for captions with HTML entities, control characters or CJK).
    /// </summary>
    public const int SchemaVersion = 2;

    /// <summary>The config keys that change the cache (nothing that only training reads).</summary>
    public static IReadOnlyList<string> ConfigKeys { get; } =
    [
        "latents.resolution", "latents.interpolation", "latents.center_crop", "latents.random_flip", "latents.variants",
        "latents.seed", "latents.bucketing", "latents.bucket_min_side", "latents.bucket_max_side", "latents.shard_size",
        "latents.embedding_dtype", "latents.posterior_dtype", "model.clip_skip", "model.tokenizer_cleaning",
    ];

    /// <summary>The stage as the graph declares it: name, Cake task, schema version, config keys, upstream stages, runner.</summary>
    public static StageDefinition Definition { get; } = new StageDefinition("latents", "PrecomputeLatents", SchemaVersion, ConfigKeys, ["model", "download"],
        "Encode images with the VAE and captions with the text encoder into shards")
    {
        ExternalInputs = ExternalInputs,
        UpstreamByContent = new HashSet<string> { "model" },
        CreateRunner = _ => new LatentsStage(),
        UnusedKeys = UnusedKeys,
    };

    /// <summary>
    /// The latents keys <paramref name="config"/> leaves unused: a centre crop has no random box to vary (one variant, two with
    /// flips, whatever <c>latents.variants</c> and <c>latents.seed</c> say; see <see cref="LatentPlan"/>), and bucket sides
    /// matter only with bucketing.
    /// </summary>
    public static IEnumerable<string> UnusedKeys(EffectiveConfig config)
    {
        var latents = config.Typed.Latents;
        if (latents.CenterCrop) return latents.Bucketing ? ["latents.variants", "latents.seed"] : ["latents.variants", "latents.seed", "latents.bucket_min_side", "latents.bucket_max_side"];
        return latents.Bucketing ? [] : ["latents.bucket_min_side", "latents.bucket_max_side"];
    }

    /// <summary>The model files the cache depends on: the VAE, text encoder and tokenizer, not the UNet.</summary>
    public static IReadOnlyDictionary<string, string> ExternalInputs(StageInputContext context)
    {
        var inputs = ModelStage.ExternalInputs(context)
            .Where(p => !p.Key.StartsWith("file:", StringComparison.Ordinal)
                || p.Key.StartsWith("file:vae/", StringComparison.Ordinal)
                || p.Key.StartsWith("file:text_encoder/", StringComparison.Ordinal)
                || p.Key.StartsWith("file:tokenizer/", StringComparison.Ordinal)
                || p.Key.StartsWith("file:text_encoder_2/", StringComparison.Ordinal)
                || p.Key.StartsWith("file:tokenizer_2/", StringComparison.Ordinal))
            .ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        // The variant's files were fingerprinted before the encoders read them (a folder holding both was encoded from
        // the plain ones): a variant's cache is keyed by the variant too, which leaves every other cache's key as it was.
        if (context.Config.Typed.Model.Variant is { Length: > 0 } variant) inputs["model.variant"] = variant;
        return inputs;
    }

    // diffusers' tokenize_captions cuts a long caption without a word (kohya too, unless --max_token_length); say so
    // here once, since a tagger's captions often run past 75 tokens and whatever follows is never trained.
    private static void WarnOfLongCaptions(StageWorkspace workspace, IReadOnlyList<DatasetItem> items, CaptionEncoder captionEncoder)
    {
        var cut = items.Select(item => (item.Source, Tokens: captionEncoder.TokensCut(item.Caption))).Where(c => c.Tokens > 0).ToList();
        if (cut.Count > 0)
            workspace.Log($"latents: warning: {cut.Count} of {items.Count} captions are longer than the text encoder reads ({captionEncoder.CaptionTokens} tokens) and are cut there, " +
                $"as diffusers cuts them; what follows is never trained (first: the caption of {cut[0].Source}, {cut[0].Tokens} tokens past)");
    }

    /// <inheritdoc />
    public JObject Run(StageWorkspace workspace)
    {
        var settings = workspace.Config.Typed.Latents;
        var runtime = workspace.Config.Typed.Runtime;
        int clipSkip = workspace.Config.Typed.Model.ClipSkip;
        string datasetFolder = workspace.FolderOf(DownloadStage.Definition);
        var items = DatasetReader.Items(datasetFolder);
        var model = ResolvedModel.Read(workspace.FolderOf(ModelStage.Definition)).Open();
        bool sdxl = SdxlStageSupport.IsSdxlFolder(model);
        var shards = LatentPlan.Make(items, settings, flipBeforeCrop: sdxl);
        int totalRows = shards.Sum(s => s.Rows.Count);

        var device = TorchRuntime.Initialise(runtime.Device, runtime.Threads);
        InferenceKernels.Use(runtime.Kernels);
        using var captionEncoder = CaptionEncoder.Open(model, ClipTextCleanings.Parse(workspace.Config.Typed.Model.TokenizerCleaning), clipSkip, device);
        using var vae = AutoencoderKL.FromFolder(model);
        vae.to(device).eval();
        WarnOfLongCaptions(workspace, items, captionEncoder);

        var rows = new List<LatentRow>();
        var skipped = new List<SkippedItem>();
        int encoded = 0, reusedShards = 0;
        var clock = Stopwatch.StartNew();
        using (var bar = workspace.Progress.Start("encode images", totalRows))
        {
            foreach (var shard in shards)
            {
                workspace.Cancellation.ThrowIfCancellationRequested();
                string path = Path.Combine(workspace.Directory, shard.Name);
                if (workspace.Resuming && TryReadFinishedShard(path) is { } finished)
                {
                    rows.AddRange(finished.Rows);
                    skipped.AddRange(finished.Skipped);
                    reusedShards++;
                    bar.Advance(shard.Rows.Count);
                    continue;
                }
                var written = EncodeShard(shard, path, datasetFolder, vae, captionEncoder, device, settings, bar, workspace.Cancellation);
                rows.AddRange(written.Rows);
                skipped.AddRange(written.Skipped);
                encoded += written.Rows.Count;
            }
        }

        double skippedFraction = items.Count == 0 ? 0 : (double)skipped.Select(s => s.Source).Distinct().Count() / items.Count;
        if (skippedFraction > settings.MaxSkippedFraction)
            throw new StageFailedException(
                $"latents: {skipped.Count} of {items.Count} images could not be used ({skippedFraction:P1} > latents.max_skipped_fraction {settings.MaxSkippedFraction:P1}); " +
                $"first: {skipped[0].Source}: {skipped[0].Reason}");

        new LatentIndex
        {
            ScalingFactor = vae.Config.ScalingFactor,
            ShiftFactor = vae.Config.ShiftFactor,
            ClipSkip = clipSkip,
            Sdxl = sdxl,
            Rows = rows,
            Skipped = skipped,
        }.Write(workspace.Directory);

        double seconds = clock.Elapsed.TotalSeconds;
        workspace.Log($"latents: {rows.Count} rows in {shards.Count} shards ({encoded} encoded, {reusedShards} shards reused from an interrupted run, {skipped.Count} skipped)" +
            (encoded > 0 ? $", {encoded / seconds:0.0} images/s" : ""));
        return Manifest.SummaryOf(new LatentsSummary
        {
            Rows = rows.Count,
            Items = items.Count,
            Shards = shards.Count,
            Encoded = encoded,
            ReusedShards = reusedShards,
            Skipped = skipped.Count,
            ImagesPerSecond = encoded > 0 ? Math.Round(encoded / seconds, 2) : null,
            PeakMemoryBytes = ProcessMemory.PeakResidentBytes(),
            Device = device.ToString(),
        });
    }

    private sealed record ShardContent(IReadOnlyList<LatentRow> Rows, IReadOnlyList<SkippedItem> Skipped);

    private static ShardContent EncodeShard(PlannedShard shard, string path, string datasetFolder, AutoencoderKL vae, CaptionEncoder captionEncoder,
        Device device, LatentsSection settings, Progress.IProgressTask bar, CancellationToken cancellation)
    {
        var interpolation = Enum.Parse<Interpolation>(settings.Interpolation, ignoreCase: true);
        var kept = new List<(PlannedRow Row, float[] Pixels)>();
        var skipped = new List<SkippedItem>();
        var columns = new Dictionary<string, List<Tensor>>(StringComparer.Ordinal);
        void Add(string name, Tensor tensor)
        {
            if (!columns.TryGetValue(name, out var list)) columns[name] = list = [];
            list.Add(tensor.MoveToOuterDisposeScope());
        }
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();

        void Flush()
        {
            if (kept.Count == 0) return;
            // The encoders' intermediates die with the batch; only the results outlive it (a shard-wide scope
            // kept every batch's activations: 18 GB for SD 1.5's VAE at 256 px).
            using var batchScope = torch.NewDisposeScope();
            int h = kept[0].Row.Bucket.Height, w = kept[0].Row.Bucket.Width;
            var pixels = torch.tensor(kept.SelectMany(k => k.Pixels).ToArray(), [kept.Count, 3, h, w]).to(device);
            try
            {
                using var posterior = vae.Encode(pixels);
                Add(LatentTensorNames.Mean, posterior.Mean.to(DType(settings.PosteriorDtype)).cpu());
                Add(LatentTensorNames.Std, posterior.Std.to(DType(settings.PosteriorDtype)).cpu());
                foreach (var (name, tensor) in captionEncoder.Encode(kept.Select(k => k.Row.Item.Caption).ToList(), DType(settings.EmbeddingDtype)))
                    Add(name, tensor);
            }
            catch (Exception e) when (IsOutOfMemory(e))
            {
                throw new StageFailedException($"latents: the device ran out of memory encoding a batch of {kept.Count} images at {w}x{h}; " +
                    $"lower latents.batch_size (now {settings.BatchSize}), e.g. --set latents.batch_size={Math.Max(1, settings.BatchSize / 2)}", e);
            }
            if (captionEncoder.IsSdxl)
            {
                // compute_time_ids' inputs: the image's (height, width) before the resize, the crop's (top, left) after it.
                Add(LatentTensorNames.OriginalSize, torch.tensor(kept.SelectMany(k => new long[] { k.Row.Item.Height, k.Row.Item.Width }).ToArray(), [kept.Count, 2]));
                Add(LatentTensorNames.CropTopLeft, torch.tensor(kept.SelectMany(k => new long[] { k.Row.SdxlCropTopLeft.Top, k.Row.SdxlCropTopLeft.Left }).ToArray(), [kept.Count, 2]));
            }
            bar.Advance(kept.Count);
        }

        var rows = new List<LatentRow>();
        var batch = new List<(PlannedRow, float[])>();
        foreach (var row in shard.Rows)
        {
            cancellation.ThrowIfCancellationRequested();
            float[] data;
            try
            {
                var image = ImageCodec.DecodeRgb(DatasetReader.ImageBytes(datasetFolder, row.Item));
                var resized = PilResampler.Resize(image, row.Resized.Width, row.Resized.Height, ImagePreprocessor.Filter(interpolation));
                data = ImagePreprocessor.ToTensorData(resized, row.Crop, row.Flip);
            }
            catch (Exception e) when (e is InvalidDataException or IOException)
            {
                skipped.Add(new SkippedItem(row.Item.Id, $"undecodable image: {e.Message}"));
                bar.Advance(1);
                continue;
            }
            kept.Add((row, data));
            rows.Add(new LatentRow(row.Item.Id, row.Item.Caption, row.Item.Sha256, row.Item.Split, row.Bucket.ToString(),
                [row.Crop.Left, row.Crop.Top, row.Crop.Width, row.Crop.Height], row.Flip, row.Variant, shard.Name, rows.Count));
            if (kept.Count == settings.BatchSize)
            {
                Flush();
                kept.Clear();
            }
        }
        Flush();

        if (rows.Count > 0)
        {
            var tensors = columns.ToDictionary(c => c.Key, c => torch.cat(c.Value), StringComparer.Ordinal);
            // The shard carries its own rows, so a resumed run can rebuild the index from finished shards alone.
            SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string>
            {
                ["rows"] = JsonConvert.SerializeObject(rows),
                ["skipped"] = JsonConvert.SerializeObject(skipped),
            });
        }
        else
        {
            AtomicFile.WriteAllText(path + ".empty", JsonConvert.SerializeObject(skipped));
        }
        return new ShardContent(rows, skipped);
    }

    private static ShardContent? TryReadFinishedShard(string path)
    {
        try
        {
            if (File.Exists(path + ".empty"))
                return new ShardContent([], JsonConvert.DeserializeObject<List<SkippedItem>>(File.ReadAllText(path + ".empty")) ?? []);
            if (!File.Exists(path)) return null;
            using var file = SafeTensorsFile.Open(path);
            var rows = JsonConvert.DeserializeObject<List<LatentRow>>(file.Metadata["rows"]) ?? [];
            var skipped = JsonConvert.DeserializeObject<List<SkippedItem>>(file.Metadata["skipped"]) ?? [];
            return file.Contains("mean") && file.Entry("mean").Shape[0] == rows.Count ? new ShardContent(rows, skipped) : null;
        }
        catch (Exception e) when (e is WeightsException or JsonException or KeyNotFoundException)
        {
            return null; // not a finished shard: encode it again
        }
    }

    private static ScalarType DType(string name) => name switch
    {
        "float32" => ScalarType.Float32,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        _ => throw new ConfigException($"dtype '{name}' is not one of float32, float16, bfloat16"),
    };

    private static bool IsOutOfMemory(Exception e) =>
        e is OutOfMemoryException
        || (e is ExternalException or InvalidOperationException && e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
        || e.Message.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase);
}
