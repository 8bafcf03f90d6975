using SdPipeline.Config;
using Newtonsoft.Json.Linq;
using SdPipeline.Downloads;
using SdPipeline.Hub;
using SdPipeline.Pipeline;
using SdPipeline.Weights;

namespace SdPipeline.BaseModel;

/// <summary>
/// The <c>model</c> stage: resolves <c>model.base</c> to a diffusers folder and records it in
/// <c>model.json</c>. Its fingerprint is the content of the weights (the Hub's SHA-256 for Hub files,
/// hashes remembered by size and time for local files, the generator's version and seed for builtins),
/// not the name they were reached by: a change of weights invalidates every downstream stage, and moving
/// the same weights to another folder invalidates nothing.
/// </summary>
public sealed class ModelStage : IStageRunner
{
    /// <summary>The stage as the graph declares it: name, Cake task, schema version, config keys, upstream stages, runner.</summary>
    public static StageDefinition Definition { get; } = new StageDefinition("model", "Model", 1, [], [],
        "Resolve the base model (builtin:tiny, a Hub repo or a local diffusers folder)")
    {
        ExternalInputs = ExternalInputs,
        CreateRunner = _ => new ModelStage(),
        CheckConfig = CheckConfig,
    };

    /// <summary>What the model stage would refuse in <paramref name="config"/>, before anything runs.</summary>
    public static IReadOnlyList<string> CheckConfig(EffectiveConfig config)
    {
        var model = config.Typed.Model;
        return SingleFile(model.Base) && model.SingleFileConfig.Length == 0
            ? ["model.base is a single-file checkpoint, which carries no tokenizer: set model.single_file_config to a diffusers folder of the same architecture (its tokenizer/ is used)"]
            : [];

        static bool SingleFile(string modelBase)
        {
            try
            {
                return BaseModelSource.Parse(modelBase) is BaseModelSource.SingleFile;
            }
            catch (ConfigException)
            {
                return false; // reported by the model stage itself
            }
        }
    }

    /// <summary>Content hashes of the weights <c>model.base</c> names, without downloading them.</summary>
    public static IReadOnlyDictionary<string, string> ExternalInputs(StageInputContext context)
    {
        var settings = context.Config.Typed.Model;
        string? variant = Variant(settings.Variant);
        switch (BaseModelSource.Parse(settings.Base))
        {
            case BaseModelSource.Builtin builtin:
                return new Dictionary<string, string> { [$"builtin:{builtin.Name}"] = BuiltinModels.Identity(builtin.Name, settings.BuiltinSeed, settings.BuiltinAutoencoderSteps) };
            case BaseModelSource.Local local:
                var folder = Open(local.Folder, settings.Base);
                return Prefixed(ModelFiles.Select(folder, variant).ToDictionary(f => f, f => context.Hashes.Hash(Path.Combine(folder.Root, f))));
            case BaseModelSource.SingleFile single:
                return SingleFileModel.Identity(single.File, settings.SingleFileConfig, context.Hashes);
            case BaseModelSource.FromHub hub:
                var cache = new HubCache(HubSettings.FromEnvironment().HubCache);
                if (HubSnapshotDownloader.FromCache(cache, hub.Model, variant) is { } cached)
                    return Prefixed(cached.ContentHashes);
                return Prefixed(ListOnHub(hub.Model, variant, context.Config.Typed.Download, context.Cancellation));
            default:
                throw new InvalidOperationException("unknown model source");
        }
    }

    /// <inheritdoc />
    public JObject Run(StageWorkspace workspace)
    {
        var settings = workspace.Config.Typed.Model;
        string? variant = Variant(settings.Variant);
        ResolvedModel resolved = BaseModelSource.Parse(settings.Base) switch
        {
            BaseModelSource.Builtin builtin => BuiltinModels.Create(builtin.Name, settings.BuiltinSeed, settings.BuiltinAutoencoderSteps, workspace),
            BaseModelSource.Local local => ResolveLocal(local, variant, settings.Base),
            BaseModelSource.SingleFile single => SingleFileModel.Create(single.File, settings.SingleFileConfig, workspace),
            BaseModelSource.FromHub hub => Download(hub.Model, variant, settings.Base, workspace),
            _ => throw new InvalidOperationException("unknown model source"),
        };
        resolved.Write(workspace.Directory);
        workspace.Log($"model: {resolved.Source} → {resolved.Folder}{(Path.IsPathRooted(resolved.Folder) ? "" : " (inside the artifact)")}");
        return Manifest.SummaryOf(new ModelSummary { Kind = resolved.Kind, Folder = resolved.Folder, Commit = resolved.Commit, Files = resolved.ContentHashes.Count });
    }

    private static ResolvedModel ResolveLocal(BaseModelSource.Local local, string? variant, string source)
    {
        var folder = Open(local.Folder, source);
        var hashes = ModelFiles.Select(folder, variant).ToDictionary(f => f, f => FileHashCache.HashFile(Path.Combine(folder.Root, f)), StringComparer.Ordinal);
        return new ResolvedModel { Kind = "local", Source = source, Folder = folder.Root, Variant = UsedVariant(hashes.Keys, variant), ContentHashes = hashes };
    }

    private static ResolvedModel Download(HubModelRef model, string? variant, string source, StageWorkspace workspace)
    {
        var settings = HubSettings.FromEnvironment();
        var waits = DownloadSettings.From(workspace.Config.Typed.Download);
        using var http = HttpClients.Create(waits);
        var client = new HubClient(http, settings, waits);
        var downloader = new HttpDownloader(http, client.Authorize) { PartSuffix = ".incomplete", Settings = waits, Log = workspace.Log };
        var snapshot = new HubSnapshotDownloader(client, new HubCache(settings.HubCache), downloader, workspace.Log)
            .DownloadAsync(model, variant, workspace.Progress, workspace.Cancellation).GetAwaiter().GetResult();
        return new ResolvedModel { Kind = "hub", Source = source, Folder = snapshot.Folder, Commit = snapshot.Commit, Variant = UsedVariant(snapshot.ContentHashes.Keys, variant), ContentHashes = snapshot.ContentHashes };
    }

    /// <summary>
    /// The variant the loaders are to read: <paramref name="variant"/> when a selected weight file is the variant's, else none
    /// (a folder without it is fingerprinted by its plain files, and another config may reuse that artifact).
    /// </summary>
    private static string? UsedVariant(IEnumerable<string> selected, string? variant) =>
        variant is not null && selected.Any(f => DiffusersFolder.IsVariantFile(f, variant)) ? variant : null;

    /// <summary>
    /// The Hub's hashes of the files the model stage would fetch. Planning asks the Hub only for this listing, within
    /// the download timeouts and until Ctrl+C: a Hub that is down or never answers makes the stage's plan an error
    /// that says the files could not be checked, never a hang.
    /// </summary>
    private static Dictionary<string, string> ListOnHub(HubModelRef model, string? variant, DownloadSection download, CancellationToken cancellation)
    {
        var settings = HubSettings.FromEnvironment();
        if (settings.Offline)
            throw new StageInputException($"model.base {model}: not in the Hub cache ({settings.HubCache}) and HF_HUB_OFFLINE is set; run the Model stage once with network access");
        var waits = DownloadSettings.From(download);
        using var http = HttpClients.Create(waits);
        var client = new HubClient(http, settings, waits);
        try
        {
            string commit = client.ResolveRevisionAsync(HubRepoKind.Model, model.Repo, model.Revision, cancellation).GetAwaiter().GetResult();
            var files = PipelineFiles.Select(client.ListFilesAsync(HubRepoKind.Model, model.Repo, commit, cancellation).GetAwaiter().GetResult(), variant);
            return files.ToDictionary(f => f.Path, f => f.Sha256 ?? f.GitOid, StringComparer.Ordinal);
        }
        catch (StageFailedException e) when (!HubClient.IsRefusedAnswer(e))
        {
            throw new StageInputException($"model.base {model}: could not check its files on the Hub: {e.Message}");
        }
    }

    private static DiffusersFolder Open(string folder, string written)
    {
        try
        {
            return DiffusersFolder.Open(folder);
        }
        catch (WeightsException e)
        {
            throw new StageInputException($"model.base: {e.Message}" + (Directory.Exists(folder) || File.Exists(folder) ? "" : NotFoundHint(written)));
        }
    }

    /// <summary>
    /// What to add when <c>model.base</c> names nothing on disk: where a relative path was looked for, and for
    /// <c>org/name</c> (diffusers' <c>--pretrained_model_name_or_path</c> takes a Hub id bare) the <c>hf:</c> form.
    /// </summary>
    internal static string NotFoundHint(string written)
    {
        string hint = Path.IsPathRooted(written) ? "" : $" (a relative path is read from the working directory, {Directory.GetCurrentDirectory()})";
        return hint + HubPaths.HubFormHint(written, "model.base", "repository");
    }

    private static Dictionary<string, string> Prefixed(IReadOnlyDictionary<string, string> hashes) =>
        hashes.ToDictionary(p => $"file:{p.Key}", p => p.Value, StringComparer.Ordinal);

    private static string? Variant(string variant) => variant.Length == 0 ? null : variant;
}
