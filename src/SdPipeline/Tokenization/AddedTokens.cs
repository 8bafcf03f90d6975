using Newtonsoft.Json;
using Newtonsoft.Json.Linq;

namespace SdPipeline.Tokenization;

/// <summary>
/// Tokens a tokenizer folder adds beyond <c>vocab.json</c>, such as a textual-inversion placeholder (<c>&lt;cat-toy&gt;</c>
/// = 49408) that diffusers' <c>textual_inversion.py</c> saves with the tokenizer. They are read as transformers'
/// <c>from_pretrained</c> reads them: <c>tokenizer_config.json</c>'s <c>added_tokens_decoder</c> (id → token object) or,
/// when the config has none, <c>added_tokens.json</c> (token → id). transformers' <c>tokenize</c> cuts each such literal
/// out of the text before any clean-up (case-sensitive, the longest one at the leftmost place: its trie) and gives it
/// its id, so <c>a &lt;cat-toy&gt; on a mat</c> is <c>a</c>, 49408, <c>on a mat</c>.
/// </summary>
/// <remarks>
/// Entries already in <c>vocab.json</c> under the same id (the start and end tokens, SD 2.x's <c>"!"</c>) are not cut
/// out here: the start and end literals are the pre-tokenizer's, and the rest keep the ids the project's reference
/// fixtures were made with. An entry that contradicts <c>vocab.json</c>, or asks for <c>single_word</c> matching, is
/// refused rather than given ids transformers would not give.
/// </remarks>
internal sealed class AddedTokens
{
    /// <summary>A folder that adds nothing.</summary>
    public static AddedTokens None { get; } = new([]);

    // Longest first, so the first one that matches at a position is the longest there.
    private readonly List<KeyValuePair<string, int>> _tokens;

    private AddedTokens(IEnumerable<KeyValuePair<string, int>> tokens) =>
        _tokens = tokens.OrderByDescending(t => t.Key.Length).ThenBy(t => t.Key, StringComparer.Ordinal).ToList();

    /// <summary>How many tokens are cut out of the text.</summary>
    public int Count => _tokens.Count;

    /// <summary>The largest id they give, or -1.</summary>
    public int MaxId => _tokens.Count == 0 ? -1 : _tokens.Max(t => t.Value);

    /// <summary>The id of <paramref name="token"/> when it is one of these, else null.</summary>
    public int? IdOf(string token)
    {
        foreach (var (content, id) in _tokens)
            if (content == token) return id;
        return null;
    }

    /// <summary>What a folder declares, as (token, id, where it was read); not yet checked against the vocabulary.</summary>
    public sealed record Declared(string Content, int Id, string From);

    /// <summary>
    /// The added tokens <paramref name="config"/> (read from <paramref name="configPath"/>) or, when it lists none, the
    /// folder's <c>added_tokens.json</c> declare.
    /// </summary>
    /// <exception cref="TokenizerFileException">An entry that is not a token with an integer id, or one with <c>single_word</c>.</exception>
    public static List<Declared> Read(string folder, JObject? config, string configPath)
    {
        var declared = new List<Declared>();
        if (config?["added_tokens_decoder"] is JToken decoder && decoder.Type != JTokenType.Null)
        {
            if (decoder is not JObject entries)
                throw new TokenizerFileException($"{configPath}: added_tokens_decoder must be an object of id → token, found {decoder.Type}; {TokenizerFileException.Fix}");
            foreach (var (key, value) in entries)
            {
                string where = $"{configPath}: added_tokens_decoder[\"{key}\"]";
                if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id))
                    throw new TokenizerFileException($"{where}: the key must be a token id (a whole number); {TokenizerFileException.Fix}");
                string content = value switch
                {
                    { Type: JTokenType.String } => (string)value!,
                    JObject token when token["content"] is { Type: JTokenType.String } text => (string)text!,
                    _ => throw new TokenizerFileException($"{where}: expected {{\"content\": \"...\"}}, found {value}; {TokenizerFileException.Fix}"),
                };
                if (value is JObject { } flags && flags["single_word"] is { Type: JTokenType.Boolean } single && (bool)single)
                    throw new TokenizerFileException($"{where}: \"{content}\" has single_word true, which this tokenizer does not reproduce; " +
                        "set \"single_word\": false (textual-inversion tokens are saved with false) or remove the entry");
                declared.Add(new Declared(content, id, where));
            }
            return declared;
        }

        string path = Path.Combine(folder, "added_tokens.json");
        if (!File.Exists(path))
            return declared;
        JObject map;
        try
        {
            map = JObject.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new TokenizerFileException($"{path}: not a JSON object of token → id: {e.Message}; {TokenizerFileException.Fix}", e);
        }
        foreach (var (content, value) in map)
        {
            if (value is not { Type: JTokenType.Integer })
                throw new TokenizerFileException($"{path}: \"{content}\" must map to an integer id, found {value}; {TokenizerFileException.Fix}");
            declared.Add(new Declared(content, (int)value, path));
        }
        return declared;
    }

    /// <summary>The declared tokens that are not already <paramref name="vocabulary"/>'s, checked against it.</summary>
    /// <exception cref="TokenizerFileException">A token whose id another token of the vocabulary has, or a vocabulary token given another id.</exception>
    public static AddedTokens Resolve(IReadOnlyList<Declared> declared, IReadOnlyDictionary<string, int> vocabulary, string vocabPath)
    {
        var idsInVocabulary = new HashSet<int>(vocabulary.Values);
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, string>();
        foreach (var token in declared)
        {
            if (token.Content.Length == 0)
                continue; // transformers skips an empty token
            if (vocabulary.TryGetValue(token.Content, out int known))
            {
                if (known == token.Id) continue;
                throw new TokenizerFileException($"{token.From}: \"{token.Content}\" is given id {token.Id}, but {vocabPath} has it as {known}; {TokenizerFileException.Fix}");
            }
            if (idsInVocabulary.Contains(token.Id) || token.Id < 0)
                throw new TokenizerFileException($"{token.From}: \"{token.Content}\" is given id {token.Id}, which {vocabPath} already uses for another token " +
                    $"(added tokens take ids from {vocabulary.Count} on); {TokenizerFileException.Fix}");
            if (byId.TryGetValue(token.Id, out string? other) && other != token.Content)
                throw new TokenizerFileException($"{token.From}: \"{token.Content}\" and \"{other}\" are both given id {token.Id}; {TokenizerFileException.Fix}");
            byId[token.Id] = token.Content;
            added[token.Content] = token.Id;
        }
        return added.Count == 0 ? None : new AddedTokens(added);
    }

    /// <summary>
    /// <paramref name="text"/> cut at the added tokens, in order: the text between them (Id null, possibly empty) and
    /// each token found (its id).
    /// </summary>
    public IEnumerable<(string Text, int? Id)> Split(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length;)
        {
            var match = _tokens.FirstOrDefault(t => text.AsSpan(i).StartsWith(t.Key, StringComparison.Ordinal));
            if (match.Key is null)
            {
                i++;
                continue;
            }
            yield return (text[start..i], null);
            yield return (match.Key, match.Value);
            i += match.Key.Length;
            start = i;
        }
        yield return (text[start..], null);
    }
}
