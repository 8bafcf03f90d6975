using System.Text;
using System.Text.RegularExpressions;

namespace SdPipeline.Data;

/// <summary>Glob patterns over '/'-separated paths: <c>*</c> within a folder, <c>**</c> across folders, <c>?</c> one character.</summary>
public static class GlobPattern
{
    /// <summary>Whether <paramref name="path"/> matches <paramref name="pattern"/>.</summary>
    public static bool IsMatch(string pattern, string path) => ToRegex(pattern).IsMatch(path);

    private static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                regex.Append(".*");
                i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == '/') i++; // "**/" also matches no folder
            }
            else if (c == '*') regex.Append("[^/]*");
            else if (c == '?') regex.Append("[^/]");
            else regex.Append(Regex.Escape(c.ToString()));
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
