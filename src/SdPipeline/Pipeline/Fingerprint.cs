using System.Security.Cryptography;
using System.Text;
using Newtonsoft.Json.Linq;
using SdPipeline.Config;

namespace SdPipeline.Pipeline;

/// <summary>Everything a stage's fingerprint is computed from; stored in its manifest so a plan can say what changed.</summary>
/// <param name="Stage">The stage name.</param>
/// <param name="SchemaVersion">The stage's schema version.</param>
/// <param name="Config">The config keys it reads, with their values (sorted).</param>
/// <param name="Upstream">Fingerprints of the upstream stages.</param>
/// <param name="Inputs">Content hashes of inputs outside the config.</param>
public sealed record FingerprintInputs(
    string Stage,
    int SchemaVersion,
    JObject Config,
    IReadOnlyDictionary<string, string> Upstream,
    IReadOnlyDictionary<string, string> Inputs)
{
    /// <summary>The canonical JSON hashed into the fingerprint.</summary>
    public JObject ToJson() => new()
    {
        ["stage"] = Stage,
        ["schema_version"] = SchemaVersion,
        ["config"] = Config.DeepClone(),
        ["upstream"] = JObject.FromObject(Upstream),
        ["inputs"] = JObject.FromObject(Inputs),
    };

    /// <summary>SHA-256 over the canonical JSON, as 64 lowercase hex digits.</summary>
    public string Compute() =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(CanonicalJson.Serialize(ToJson()))));
}
