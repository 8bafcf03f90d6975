using System.Security.Cryptography;
using System.Text;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;
using SdPipeline.Pipeline;

namespace SdPipeline.Data;

/// <summary><c>datasets.json</c>: named datasets a config picks by <c>download.dataset</c>.</summary>
public sealed class DatasetRegistry
{
    private readonly JObject _datasets;

    /// <summary>The registry file.</summary>
    public string Path { get; }

    private DatasetRegistry(string path, JObject datasets)
    {
        Path = path;
        _datasets = datasets;
    }

    /// <summary>The dataset names, in file order.</summary>
    public IReadOnlyList<string> Names => _datasets.Properties().Select(p => p.Name).ToList();

    /// <summary>Reads a registry file.</summary>
    /// <exception cref="StageInputException">The file is missing or malformed.</exception>
    public static DatasetRegistry Load(string path)
    {
        if (!File.Exists(path))
            throw new StageInputException($"dataset registry '{path}' not found (set download.registry to the datasets.json to use)");
        try
        {
            var root = JObject.Parse(File.ReadAllText(path), new JsonLoadSettings { DuplicatePropertyNameHandling = DuplicatePropertyNameHandling.Error });
            var datasets = root["datasets"] as JObject
                ?? throw new StageInputException($"{path}: expected an object {{\"datasets\": {{name: entry, …}}}}");
            return new DatasetRegistry(path, datasets);
        }
        catch (JsonReaderException e)
        {
            throw new StageInputException($"{path}: invalid JSON at line {e.LineNumber}, position {e.LinePosition}: {e.Message}");
        }
    }

    /// <summary>A registry of one entry that no file holds (<c>download.source</c>); relative paths resolve against <paramref name="baseFolder"/>.</summary>
    public static DatasetRegistry FromEntry(string baseFolder, string name, JObject entry) =>
        new(System.IO.Path.Combine(System.IO.Path.GetFullPath(baseFolder), name), new JObject { [name] = entry });

    /// <summary>The entry called <paramref name="name"/>.</summary>
    /// <exception cref="StageInputException">No such dataset, or an entry with unknown fields.</exception>
    public DatasetEntry Get(string name)
    {
        if (_datasets[name] is not JObject json)
            throw new StageInputException(Names.Count == 0
                ? $"{Path}: no datasets defined"
                : $"{Path}: unknown dataset '{name}'; did you mean '{ConfigSchema.Closest(name, Names)}'? (download.dataset; datasets: {string.Join(", ", Names)})");
        try
        {
            var entry = json.ToObject<DatasetEntry>(JsonSerializer.Create(new JsonSerializerSettings { MissingMemberHandling = MissingMemberHandling.Error }))!;
            CheckUrls(entry, name);
            return entry with { Name = name };
        }
        catch (JsonException e)
        {
            throw new StageInputException($"{Path}: dataset '{name}': {e.Message}");
        }
    }

    /// <summary>
    /// Every address the entry fetches is an absolute http:// or https:// URL, checked when the entry is read (so
    /// <c>sdpipe plan</c> names it too): a relative or <c>file:</c> one failed mid-download with a URI or scheme exception.
    /// </summary>
    private void CheckUrls(DatasetEntry entry, string name)
    {
        bool single = entry.Source.StartsWith("http://", StringComparison.Ordinal) || entry.Source.StartsWith("https://", StringComparison.Ordinal);
        var urls = entry.Source == "http" ? entry.Urls.Select((f, i) => (Where: $"urls[{i}].url", Url: f?.Url))
            : single ? [("source", (string?)entry.Source)] : [];
        foreach (var (where, url) in urls)
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
                throw new StageInputException($"{Path}: dataset '{name}': {where} '{url}' is not an http:// or https:// URL " +
                    "(a local file or folder is given as the source itself, not as a URL)");
    }

    /// <summary>SHA-256 of an entry's canonical JSON: the dataset's identity in fingerprints.</summary>
    public string EntryHash(string name)
    {
        Get(name); // validates
        string canonical = CanonicalJson.Serialize(_datasets[name]!);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
    }
}
