using System.Text;
using Newtonsoft.Json;

namespace SdPipeline.Config;

/// <summary>The configuration reference as Markdown, from the schema itself (the README's tables are this output).</summary>
public static class ConfigDocumentation
{
    /// <summary>One table per section: key, type, default, meaning.</summary>
    public static string Markdown()
    {
        var text = new StringBuilder();
        foreach (var section in ConfigSchema.Keys.GroupBy(k => k.Section))
        {
            text.Append($"#### `{section.Key}`\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n");
            foreach (var key in section)
            {
                string allowed = key.AllowedValues.Count > 0 ? $" ({string.Join(", ", key.AllowedValues.Where(v => v.Length > 0))})" : "";
                text.Append($"| `{key.Path}` | {key.TypeAndRange}{allowed} | `{key.Default.ToString(Formatting.None)}` | {key.Description.Replace("|", "\\|")} |\n");
            }
            text.Append('\n');
        }
        return text.ToString();
    }
}
