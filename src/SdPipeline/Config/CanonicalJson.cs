using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Config;

/// <summary>
/// The one JSON form that fingerprints hash: object keys sorted ordinally at every depth, no whitespace.
/// Two configs that mean the same thing produce the same bytes whatever order their files list keys in.
/// </summary>
public static class CanonicalJson
{
    /// <summary>A copy of <paramref name="token"/> with object keys sorted at every depth.</summary>
    public static JToken Sorted(JToken token) => token switch
    {
        JObject obj => new JObject(obj.Properties()
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .Select(p => new JProperty(p.Name, Sorted(p.Value)))),
        JArray array => new JArray(array.Select(Sorted)),
        _ => token.DeepClone(),
    };

    /// <summary>The canonical text of <paramref name="token"/>.</summary>
    public static string Serialize(JToken token) => Sorted(token).ToString(Formatting.None);
}
