using System.Diagnostics;
using System.Reflection;
using Newtonsoft.Json.Linq;
using SdPipeline.Files;

namespace SdPipeline.Pipeline;

/// <summary>
/// The content-addressed artifact store: <c>ROOT/STAGE/FINGERPRINT/</c>, each folder built in a hidden
/// sibling (<c>.FINGERPRINT.partial</c>, kept across interrupted runs so stages can resume), renamed into
/// place after <c>manifest.json</c> has been written into it, under a lock that keeps two processes from
/// building the same artifact at once.
/// </summary>
public sealed class ArtifactStore(string root)
{
    /// <summary>Characters of the fingerprint used in folder names (64 bits: collisions are not a concern).</summary>
    public const int ShortLength = 16;

    /// <summary>The store's root folder.</summary>
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>The version string recorded in manifests.</summary>
    public static string ToolVersion { get; } =
        typeof(ArtifactStore).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The short form of a fingerprint used in folder names and messages.</summary>
    public static string Short(string fingerprint) => fingerprint[..Math.Min(ShortLength, fingerprint.Length)];

    /// <summary>The folder of one stage's artifacts.</summary>
    public string StageDirectory(string stage) => Path.Combine(Root, stage);

    /// <summary>The folder of one artifact.</summary>
    public string ArtifactDirectory(string stage, string fingerprint) => Path.Combine(Root, stage, Short(fingerprint));

    /// <summary>A folder for caches shared across artifacts (downloads, file hashes).</summary>
    public string SharedDirectory(string name) => Path.Combine(Root, "_shared", name);

    /// <summary>Checks whether the artifact folder is complete: manifest present, fingerprint matching, every file the recorded size (and, with <paramref name="verify"/>, hash).</summary>
    public ArtifactStatus Check(string stage, string fingerprint, bool verify = false)
    {
        string folder = ArtifactDirectory(stage, fingerprint);
        if (!Directory.Exists(folder)) return new ArtifactStatus(null, "not built", Exists: false);
        var manifest = Manifest.TryRead(Path.Combine(folder, Manifest.FileName));
        if (manifest is null) return new ArtifactStatus(null, "incomplete: no readable manifest.json (interrupted build?)", Exists: true);
        if (manifest.Fingerprint != fingerprint) return new ArtifactStatus(null, "manifest belongs to another fingerprint", Exists: true);
        foreach (var file in manifest.Files)
        {
            var info = new FileInfo(Path.Combine(folder, file.Path));
            if (!info.Exists) return new ArtifactStatus(null, $"file {file.Path} is missing", Exists: true);
            if (info.Length != file.Size) return new ArtifactStatus(null, $"file {file.Path} changed size ({file.Size} → {info.Length} bytes)", Exists: true);
            if (verify && FileHashCache.HashFile(info.FullName) != file.Sha256)
                return new ArtifactStatus(null, $"file {file.Path} changed content (SHA-256 mismatch)", Exists: true);
        }
        return new ArtifactStatus(manifest, null, Exists: true);
    }

    /// <summary>The valid manifests of a stage, newest first.</summary>
    public IReadOnlyList<Manifest> Manifests(string stage)
    {
        string folder = StageDirectory(stage);
        if (!Directory.Exists(folder)) return [];
        return Directory.EnumerateDirectories(folder)
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Select(d => Manifest.TryRead(Path.Combine(d, Manifest.FileName)))
            .Where(m => m is not null && Path.GetFileName(ArtifactDirectory(stage, m.Fingerprint)) == Short(m.Fingerprint))
            .Select(m => m!)
            .OrderByDescending(m => m.FinishedAt)
            .ToList();
    }

    /// <summary>
    /// Returns the artifact for <paramref name="inputs"/>, building it with <paramref name="build"/> (given the
    /// folder to fill and whether it holds an interrupted run's work; returning the summary) unless a valid one
    /// exists or <paramref name="force"/> is set.
    /// </summary>
    public BuildOutcome Build(
        FingerprintInputs inputs,
        JObject effectiveConfig,
        Func<string, bool, JObject> build,
        bool force = false,
        Action<string>? onWait = null,
        CancellationToken cancellation = default)
    {
        string fingerprint = inputs.Compute();
        string stage = inputs.Stage;
        string final = ArtifactDirectory(stage, fingerprint);
        if (!force && Check(stage, fingerprint) is { IsValid: true } hit)
            return new BuildOutcome(final, hit.Manifest!, CacheHit: true);

        string stageDir = StageDirectory(stage);
        StoreMarkers.MarkStore(Root);
        Directory.CreateDirectory(stageDir);
        string shortFp = Short(fingerprint);
        using var _ = FileLock.Acquire(Path.Combine(stageDir, $".{shortFp}.lock"), TimeSpan.FromHours(24),
            () => onWait?.Invoke($"{stage}: another process is building {shortFp}; waiting for it"), cancellation);

        // Another process may have finished it while we waited for the lock.
        if (!force && Check(stage, fingerprint) is { IsValid: true } built)
            return new BuildOutcome(final, built.Manifest!, CacheHit: true);

        string partial = Path.Combine(stageDir, $".{shortFp}.partial");
        bool resuming = Directory.Exists(partial)
            && Directory.EnumerateFileSystemEntries(partial).Any(e => Path.GetFileName(e) != StoreMarkers.PartialFileName);
        Directory.CreateDirectory(partial);
        // A write the interrupted build never finished is no part of the artifact (at SD 1.5's size, a 3.4 GB half UNet).
        if (resuming)
            foreach (string leftover in Directory.EnumerateFiles(partial, "*", OwnFiles).Where(AtomicFile.IsTemporary).ToList())
                File.Delete(leftover);
        StoreMarkers.MarkPartial(partial, inputs, fingerprint);

        var started = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        var summary = build(partial, resuming);
        cancellation.ThrowIfCancellationRequested();

        var manifest = new Manifest
        {
            Stage = stage,
            Fingerprint = fingerprint,
            FingerprintInputs = inputs.ToJson(),
            EffectiveConfig = effectiveConfig,
            Files = ListFiles(partial),
            StartedAt = started,
            FinishedAt = DateTime.UtcNow,
            DurationSeconds = Math.Round(clock.Elapsed.TotalSeconds, 3),
            ToolVersion = ToolVersion,
            Summary = summary,
        };
        AtomicFile.WriteAllText(Path.Combine(partial, Manifest.FileName), manifest.ToJson());

        // From here the manifest identifies the folder to gc; the build marker would only be an unlisted file.
        File.Delete(Path.Combine(partial, StoreMarkers.PartialFileName));
        // Every file on disk before the rename that makes the artifact a hit.
        Durability.FlushFolder(partial);
        if (Directory.Exists(final))
        {
            string trash = Path.Combine(stageDir, $".{shortFp}.trash-{Guid.NewGuid():N}");
            Directory.Move(final, trash);
            Directory.Delete(trash, recursive: true);
        }
        Directory.Move(partial, final);
        Durability.FlushDirectoryEntry(stageDir);
        return new BuildOutcome(final, manifest, CacheHit: false);
    }

    // Not through links: a train artifact's pipeline/ links the base model's folders.
    private static readonly EnumerationOptions OwnFiles = new() { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint };

    private static List<ManifestFile> ListFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(path => (path, relative: Path.GetRelativePath(folder, path).Replace('\\', '/')))
            .Where(f => f.relative != Manifest.FileName && f.relative != StoreMarkers.PartialFileName)
            .OrderBy(f => f.relative, StringComparer.Ordinal)
            .Select(f => new ManifestFile(f.relative, new FileInfo(f.path).Length, FileHashCache.HashFile(f.path)))
            .ToList();
}
