using System.Security.Cryptography;
using System.Text;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Downloads;
using SdPipeline.Hub;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary>
/// The <c>download</c> stage: fetches the dataset named by <c>download.dataset</c>, verifies it, and writes
/// its normalised form (see <see cref="DatasetWriter"/>). Downloaded files are kept in a shared cache
/// (<c>artifacts/_shared/downloads</c>), so a config change that only re-normalises never downloads again.
/// </summary>
public sealed class DownloadStage : IStageRunner
{
    /// <summary>
    /// The stage as the graph declares it: name, Cake task, schema version, config keys, upstream stages, runner.
    /// Version 2: an item's width and height are as displayed, after the EXIF orientation, and a sidecar's caption is its
    /// first line, as kohya's (version 1 recorded sizes as stored and took the whole file).
    /// </summary>
    public static StageDefinition Definition { get; } = new StageDefinition("download", "Download", 2,
        ["download.dataset", "download.count", "download.min_side", "download.max_pixels", "download.heldout_fraction", "download.missing_caption"], [],
        "Fetch, verify and normalise the dataset named in datasets.json")
    {
        ExternalInputs = ExternalInputs,
        CreateRunner = _ => new DownloadStage(),
        // download.source names the dataset itself; its identity is then the source's (ExternalInputs).
        UnusedKeys = config => config.Typed.Download.Source.Length > 0 ? ["download.dataset"] : [],
    };

    /// <summary>The dataset's identity for the fingerprint: its registry entry, and the content of local sources.</summary>
    public static IReadOnlyDictionary<string, string> ExternalInputs(StageInputContext context)
    {
        var settings = context.Config.Typed.Download;
        var (registry, name) = DatasetSelection.Resolve(settings);
        var entry = registry.Get(name);
        var inputs = new Dictionary<string, string> { [$"dataset:{entry.Name}"] = registry.EntryHash(entry.Name) };
        if (SourceKind(entry) == Kind.Local)
        {
            string path = LocalPath(registry, entry);
            inputs[$"local:{entry.Source}"] = LocalContentHash(path, context.Hashes);
        }
        // An option the entry leaves out takes its default, which the entry's hash does not show (and which once read as 0).
        if (SourceKind(entry) == Kind.Synthetic && entry.Source == "synthetic:shapes" && ShapeOptionNames.Any(o => entry.Options[o] is null))
            inputs["options"] = ShapesOptionsOf(entry).ToString();
        return inputs;
    }

    /// <inheritdoc />
    public JObject Run(StageWorkspace workspace)
    {
        var settings = workspace.Config.Typed.Download;
        var (registry, name) = DatasetSelection.Resolve(settings);
        var entry = registry.Get(name);
        if (workspace.Resuming)
            ClearFolder(workspace.Directory); // downloads resume in the shared cache; normalising is cheap to redo

        string? revision = null;
        long? bytesDownloaded = null;
        IEnumerable<CandidateItem> candidates;
        int limit = settings.Count;
        string extractRoot = Path.Combine(workspace.Directory, ".extract");
        if (SourceKind(entry) == Kind.Synthetic)
        {
            candidates = Synthetic(entry, settings.Count);
            limit = 0; // the generator makes exactly download.count training items (plus its held-out split)
        }
        else
        {
            var (files, fetched) = Fetch(entry, registry, workspace, commit => revision = commit);
            bytesDownloaded = fetched;
            candidates = ReadFormat(entry, files, extractRoot);
        }

        var writer = new DatasetWriter(workspace.Directory, settings.MinSide, settings.MaxPixels, settings.HeldoutFraction);
        var counts = writer.Write(CaptionedFolderSource.WithMissingCaptions(candidates, settings.MissingCaption), limit, workspace.Progress, workspace.Cancellation);
        if (Directory.Exists(extractRoot)) Directory.Delete(extractRoot, recursive: true);
        if (counts.Items == 0)
            throw new StageFailedException($"dataset '{entry.Name}': no usable items ({Describe(counts.Skipped)}); see the reasons in {Path.Combine(workspace.Directory, DatasetWriter.SkippedFile)}");

        workspace.Log($"download: {counts.Items} items ({counts.Train} train, {counts.Heldout} held out); skipped {Describe(counts.Skipped)}");
        return Manifest.SummaryOf(new DownloadSummary
        {
            Dataset = entry.Name,
            Source = entry.Source,
            Revision = revision,
            BytesDownloaded = bytesDownloaded,
            Items = counts.Items,
            Train = counts.Train,
            Heldout = counts.Heldout,
            Skipped = counts.Skipped,
        });
    }

    private enum Kind { Synthetic, Hub, Http, Local }

    private static Kind SourceKind(DatasetEntry entry) => entry.Source switch
    {
        var s when s.StartsWith("synthetic:", StringComparison.Ordinal) => Kind.Synthetic,
        var s when s.StartsWith("hf:", StringComparison.Ordinal) => Kind.Hub,
        "http" => Kind.Http,
        var s when s.StartsWith("http://", StringComparison.Ordinal) || s.StartsWith("https://", StringComparison.Ordinal) => Kind.Http,
        var s when s.Length > 0 => Kind.Local,
        _ => throw new StageInputException($"dataset '{entry.Name}': no source (expected synthetic:shapes, hf:org/name, https://…, http with urls, or a local path)"),
    };

    private static IEnumerable<CandidateItem> Synthetic(DatasetEntry entry, int count)
    {
        if (entry.Source != "synthetic:shapes")
            throw new StageInputException($"dataset '{entry.Name}': unknown generator '{entry.Source}' (known: synthetic:shapes)");
        return ShapesGenerator.Generate(ShapesOptionsOf(entry), count);
    }

    private static readonly string[] ShapeOptionNames = ["seed", "count", "heldout_count", "image_size"];

    /// <summary>The entry's <c>synthetic:shapes</c> options, an option left out at its documented default (the deserializer alone would make it 0).</summary>
    private static ShapesOptions ShapesOptionsOf(DatasetEntry entry)
    {
        ShapesOptions options;
        try
        {
            var merged = JObject.FromObject(new ShapesOptions(), ConfigSchema.Serializer);
            merged.Merge(entry.Options);
            options = merged.ToObject<ShapesOptions>(ConfigSchema.Serializer)!;
        }
        catch (Exception e) when (e is Newtonsoft.Json.JsonException or OverflowException or ArgumentException)
        {
            throw new StageInputException($"dataset '{entry.Name}': options: {e.Message} (valid: {string.Join(", ", ShapeOptionNames)})");
        }
        if (options.Count < 1 || options.HeldoutCount < 0 || options.ImageSize is < 16 or > 2048)
            throw new StageInputException($"dataset '{entry.Name}': options count {options.Count}, heldout_count {options.HeldoutCount}, image_size {options.ImageSize}: " +
                "count must be at least 1, heldout_count at least 0 and image_size between 16 and 2048 pixels");
        return options;
    }

    private static (IReadOnlyList<(string Path, string Name)> Files, long Bytes) Fetch(DatasetEntry entry, DatasetRegistry registry, StageWorkspace workspace, Action<string> resolvedRevision)
    {
        var settings = workspace.Config.Typed.Download;
        var kind = SourceKind(entry);
        if (kind == Kind.Local)
        {
            string path = LocalPath(registry, entry);
            return (Directory.Exists(path)
                ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                    .Select(f => (f, Path.GetRelativePath(path, f).Replace('\\', '/'))).ToList()
                : [(path, Path.GetFileName(path))], 0);
        }

        var hub = HubSettings.FromEnvironment();
        var waits = DownloadSettings.From(settings);
        using var http = HttpClients.Create(waits);
        var client = new HubClient(http, hub, waits);
        var downloader = new HttpDownloader(http, client.Authorize) { Settings = waits, Log = workspace.Log };
        string cache = workspace.Store.SharedDirectory("downloads");
        var requests = new List<DownloadRequest>();
        Action? afterDownloads = null;
        if (kind == Kind.Hub)
        {
            string repo = entry.Source["hf:".Length..];
            string revision = entry.Revision ?? "main";
            // The repository's folder of the download cache: its commits' files, and refs/ and listings/ for offline runs.
            var repoCache = new HubCache(Path.Combine(cache, "hf"));
            string repoFolder = repoCache.RepoFolder(HubRepoKind.Dataset, repo);
            var (commit, listed) = hub.Offline
                ? OfflineListing(entry, repo, revision, repoCache, repoFolder)
                : OnlineListing(client, repo, revision, workspace.Cancellation);
            resolvedRevision(commit);
            if (revision != commit)
                workspace.Log($"download: {entry.Name}: revision '{revision}' resolved to {commit}; pin it in datasets.json for reproducible runs");
            var files = listed
                .Where(f => entry.Include.Count == 0 || entry.Include.Any(p => GlobPattern.IsMatch(p, f.Path)))
                .OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new StageFailedException($"dataset '{entry.Name}': no file of {repo}@{commit} matches include [{string.Join(", ", entry.Include)}]");
            string folder = Path.Combine(repoFolder, commit);
            // A file kept in git rather than LFS has no SHA-256 on the Hub, only its git blob id: it is checked against that.
            foreach (var file in files.Where(f => f.Sha256 is null && !HubPaths.IsCommit(f.GitOid)))
                throw HubClient.Refused($"dataset '{entry.Name}': the Hub gives {file.Path} the git oid '{file.GitOid}', which is not a 40-hex-digit blob id");
            requests.AddRange(files.Select(f => new DownloadRequest(client.FileUrl(HubRepoKind.Dataset, repo, commit, f.Path),
                Path.Combine(folder, f.Path), f.Sha256, f.Size, $"{entry.Name}: {f.Path}", GitBlobId: f.Sha256 is null ? f.GitOid : null)));
            if (hub.Offline && requests.FirstOrDefault(r => !File.Exists(r.Destination)) is { } missing)
                throw new StageFailedException($"dataset '{entry.Name}': HF_HUB_OFFLINE is set and {missing.Label[(entry.Name.Length + 2)..]} of {repo}@{commit} " +
                    $"is not in the download cache ({folder}); download it once with network access");
            afterDownloads = () =>
            {
                HubDatasetListing.Write(repoFolder, commit, listed);
                if (HubPaths.IsSafeRevision(revision)) repoCache.WriteRef(HubRepoKind.Dataset, repo, revision, commit);
            };
        }
        else
        {
            var urls = entry.Source == "http" ? entry.Urls : [new DatasetFile(entry.Source, entry.Sha256)];
            if (urls.Count == 0) throw new StageInputException($"dataset '{entry.Name}': source 'http' needs a non-empty urls list");
            foreach (var file in urls)
            {
                var url = new Uri(file.Url);
                string name = Path.GetFileName(url.AbsolutePath) is { Length: > 0 } n ? n : "download";
                string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(file.Url)))[..16];
                requests.Add(new DownloadRequest(url, Path.Combine(cache, "url", key, name), file.Sha256, null, $"{entry.Name}: {name}"));
            }
        }

        long bytes = 0;
        foreach (var request in requests)
            bytes += downloader.DownloadAsync(request, workspace.Progress, workspace.Cancellation).GetAwaiter().GetResult();
        afterDownloads?.Invoke();
        return (requests.Select(r => (r.Destination, r.Label[(entry.Name.Length + 2)..])).ToList(), bytes);
    }

    private static (string Commit, IReadOnlyList<HubFile> Files) OnlineListing(HubClient client, string repo, string revision, CancellationToken cancellation)
    {
        string commit = client.ResolveRevisionAsync(HubRepoKind.Dataset, repo, revision, cancellation).GetAwaiter().GetResult();
        return (commit, client.ListFilesAsync(HubRepoKind.Dataset, repo, commit, cancellation).GetAwaiter().GetResult());
    }

    /// <summary>
    /// With HF_HUB_OFFLINE, the commit and files a run with the network recorded (huggingface_hub answers offline from
    /// its cache the same way), so a changed download setting or a new stage version re-normalises a Hub dataset offline.
    /// </summary>
    private static (string Commit, IReadOnlyList<HubFile> Files) OfflineListing(DatasetEntry entry, string repo, string revision, HubCache repoCache, string repoFolder)
    {
        string never = $"dataset '{entry.Name}': HF_HUB_OFFLINE is set and {repo}@{revision} was never downloaded into {repoFolder}; download it once with network access";
        string commit = repoCache.ResolveRef(HubRepoKind.Dataset, repo, revision) ?? throw new StageFailedException(never);
        return (commit, HubDatasetListing.Read(repoFolder, commit) ?? throw new StageFailedException(never));
    }

    private static IEnumerable<CandidateItem> ReadFormat(DatasetEntry entry, IReadOnlyList<(string Path, string Name)> files, string extractRoot)
    {
        var plain = new List<(string Path, string Name)>();
        var roots = new List<string>();
        int archives = 0;
        foreach (var file in files)
        {
            if (ArchiveExtractor.IsArchive(file.Path))
            {
                string target = Path.Combine(extractRoot, (archives++).ToString("D3"));
                ArchiveExtractor.Extract(file.Path, target);
                roots.Add(target);
                plain.AddRange(Directory.EnumerateFiles(target, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                    .Select(f => (f, file.Name + "/" + Path.GetRelativePath(target, f).Replace('\\', '/'))));
            }
            else plain.Add(file);
        }

        var parquet = plain.Where(f => f.Path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase)).ToList();
        string format = entry.Format == "auto" ? (parquet.Count > 0 ? "parquet" : "imagefolder") : entry.Format;
        switch (format)
        {
            case "parquet":
                if (parquet.Count == 0) throw new StageFailedException($"dataset '{entry.Name}': format parquet, but no .parquet file was fetched");
                return ParquetSource.Read(parquet, entry.ImageColumn, entry.CaptionColumn);
            case "imagefolder":
                // A local folder's files come one by one, so their folders include its subfolders: each dataset is read once, recursively, from its outermost folder.
                var folders = ImageFolderSource.OutermostFolders(roots.Count > 0 ? roots : files.Select(f => Directory.Exists(f.Path) ? f.Path : Path.GetDirectoryName(f.Path)!));
                return folders.SelectMany(root => CaptionedFolderSource.Read(root, entry.CaptionColumn));
            default:
                throw new StageInputException($"dataset '{entry.Name}': unknown format '{entry.Format}' (auto, imagefolder, parquet)");
        }
    }

    private static string LocalPath(DatasetRegistry registry, DatasetEntry entry)
    {
        string source = entry.Source.StartsWith("local:", StringComparison.Ordinal) ? entry.Source["local:".Length..] : entry.Source;
        string registryFolder = Path.GetDirectoryName(Path.GetFullPath(registry.Path))!;
        string path = Path.GetFullPath(Path.Combine(registryFolder, source));
        if (!Directory.Exists(path) && !File.Exists(path))
            throw new StageInputException($"dataset '{entry.Name}': local source '{path}' not found (paths are relative to " +
                (entry.Name == DatasetSelection.SourceEntryName
                    ? $"the working directory, {Directory.GetCurrentDirectory()})" + HubPaths.HubFormHint(source, "download.source", "dataset")
                    : $"the registry's folder, {registryFolder})"));
        // An image folder is read from its root, so one file of it would bring in its siblings, which its fingerprint does not cover.
        if (File.Exists(path) && !ArchiveExtractor.IsArchive(path) && !path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase))
            throw new StageInputException($"dataset '{entry.Name}': local source '{path}' is a file, and neither an archive (.zip, .tar, .tar.gz, .tgz) " +
                "nor a .parquet; point it at the folder that holds the images and their captions");
        return path;
    }

    private static string LocalContentHash(string path, FileHashCache hashes)
    {
        var lines = File.Exists(path)
            ? [$"{Path.GetFileName(path)} {hashes.Hash(path)}"]
            : Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                .Select(f => $"{Path.GetRelativePath(path, f).Replace('\\', '/')} {hashes.Hash(f)}").ToList();
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', lines))));
    }

    private static string Describe(IReadOnlyDictionary<string, int> skipped) =>
        skipped.Count == 0 ? "none" : string.Join(", ", skipped.Select(s => $"{s.Value} {s.Key}"));

    private static void ClearFolder(string folder)
    {
        foreach (string directory in Directory.EnumerateDirectories(folder)) Directory.Delete(directory, recursive: true);
        foreach (string file in Directory.EnumerateFiles(folder).Where(f => Path.GetFileName(f) != StoreMarkers.PartialFileName)) File.Delete(file);
    }
}
