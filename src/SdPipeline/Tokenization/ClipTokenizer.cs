using Microsoft.ML.Tokenizers;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace SdPipeline.Tokenization;

/// <summary>
/// The CLIP tokenizer Stable Diffusion uses: a prompt becomes <see cref="ModelMaxLength"/> (77) token ids,
/// <c>&lt;|startoftext|&gt;</c>, the byte-level BPE tokens, <c>&lt;|endoftext|&gt;</c>, then padding. By default it
/// reproduces transformers' <c>CLIPTokenizer</c>, the one diffusers tokenizes prompts and captions with; OpenAI's
/// <c>SimpleTokenizer</c> differs only in its text clean-up and is there by name (<see cref="ClipTextCleaning"/>).
/// </summary>
/// <remarks>
/// The byte-pair merging is Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/> with <c>ByteLevel</c> (CLIP's
/// <c>bytes_to_unicode</c> is GPT-2's, which it implements) and <c>EndOfWordSuffix = "&lt;/w&gt;"</c> (CLIP marks a
/// word's last symbol, so "cat" starts as c, a, t&lt;/w&gt;). Its lowest-rank-first merge order gives the same tokens
/// as CLIP's loop that merges every occurrence of the best pair at once, because a pair a merge creates always
/// ranks after it. What it cannot do is done here: CLIP's cleaning (<see cref="TransformersClipNormalizer"/> or
/// <see cref="OpenAiClipNormalizer"/>), CLIP's word
/// split on code points (<see cref="ClipPreTokenizer"/>), and the wrap / truncate / pad to 77, where CLIP keeps
/// <c>&lt;|endoftext|&gt;</c> as the last id of a truncated prompt.
/// </remarks>
public sealed class ClipTokenizer
{
    /// <summary>The token that starts every sequence (id 49406 in CLIP's vocabulary).</summary>
    public const string StartOfTextToken = "<|startoftext|>";

    /// <summary>The token that ends every sequence (id 49407 in CLIP's vocabulary), and SD 1.x's padding.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    /// <summary>The sequence length when <c>tokenizer_config.json</c> does not say: CLIP's 77 positions.</summary>
    public const int DefaultModelMaxLength = 77;

    private readonly BpeTokenizer _bpe;
    private readonly AddedTokens _added;

    private ClipTokenizer(BpeTokenizer bpe, AddedTokens added, ClipTextCleaning cleaning, int vocabularySize, int startOfTextId, int endOfTextId, int padId, int modelMaxLength)
    {
        _bpe = bpe;
        _added = added;
        Cleaning = cleaning;
        VocabularySize = vocabularySize;
        StartOfTextId = startOfTextId;
        EndOfTextId = endOfTextId;
        PadId = padId;
        ModelMaxLength = modelMaxLength;
    }

    /// <summary>Whose text clean-up runs before the byte-pair encoding.</summary>
    public ClipTextCleaning Cleaning { get; }

    /// <summary>The length of every encoded sequence (<c>model_max_length</c>, 77 for CLIP).</summary>
    public int ModelMaxLength { get; }

    /// <summary>
    /// The number of ids: the entries of <c>vocab.json</c>, or one past the highest added token (<see cref="AddedTokens"/>)
    /// when the folder adds some; every id is below it.
    /// </summary>
    public int VocabularySize { get; }

    /// <summary>The id of <see cref="StartOfTextToken"/>.</summary>
    public int StartOfTextId { get; }

    /// <summary>The id of <see cref="EndOfTextToken"/>.</summary>
    public int EndOfTextId { get; }

    /// <summary>The id that fills a sequence after its end token (SD 1.x: 49407 = <c>&lt;|endoftext|&gt;</c>; SD 2.x: 0 = <c>!</c>).</summary>
    public int PadId { get; }

    /// <summary>
    /// Loads <c>vocab.json</c>, <c>merges.txt</c> and, when present, <c>tokenizer_config.json</c>,
    /// <c>special_tokens_map.json</c> and <c>added_tokens.json</c> from <paramref name="folder"/>: either a tokenizer
    /// folder, or a model folder in diffusers layout whose <c>tokenizer/</c> holds them. Tokens added beyond the
    /// vocabulary (a textual-inversion placeholder) get their own ids, as in transformers.
    /// </summary>
    /// <param name="folder">A tokenizer folder or a diffusers model folder.</param>
    /// <param name="cleaning">Whose text clean-up to reproduce (default: transformers', as diffusers).</param>
    /// <exception cref="TokenizerFileException">Neither the folder nor its <c>tokenizer/</c> holds <c>vocab.json</c>, <c>merges.txt</c> is missing, or a file is malformed; the message names it and the fix.</exception>
    public static ClipTokenizer FromFolder(string folder, ClipTextCleaning cleaning = ClipTextCleaning.Transformers)
    {
        string tokenizerFolder = File.Exists(Path.Combine(folder, "vocab.json")) ? folder : Path.Combine(folder, "tokenizer");
        string vocabPath = Path.Combine(tokenizerFolder, "vocab.json");
        if (!File.Exists(vocabPath))
            throw new TokenizerFileException(
                $"no CLIP tokenizer in {folder}: expected vocab.json and merges.txt there or in {Path.Combine(folder, "tokenizer")}; {TokenizerFileException.Fix}");

        var special = SpecialTokenSettings.Read(tokenizerFolder);
        return FromFiles(vocabPath, Path.Combine(tokenizerFolder, "merges.txt"), special.ModelMaxLength, special.PadToken, cleaning, special.Added);
    }

    /// <summary>Loads a tokenizer from a CLIP <c>vocab.json</c> and <c>merges.txt</c>.</summary>
    /// <param name="vocabPath">JSON object of token → id, with <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c>.</param>
    /// <param name="mergesPath">Merges, one "a b" pair a line in rank order, after an optional <c>#version</c> line.</param>
    /// <param name="modelMaxLength">The length of every encoded sequence.</param>
    /// <param name="padToken">The token that fills a sequence after its end.</param>
    /// <param name="cleaning">Whose text clean-up to reproduce (default: transformers', as diffusers).</param>
    public static ClipTokenizer FromFiles(string vocabPath, string mergesPath, int modelMaxLength = DefaultModelMaxLength, string padToken = EndOfTextToken,
        ClipTextCleaning cleaning = ClipTextCleaning.Transformers) => FromFiles(vocabPath, mergesPath, modelMaxLength, padToken, cleaning, []);

    private static ClipTokenizer FromFiles(string vocabPath, string mergesPath, int modelMaxLength, string padToken, ClipTextCleaning cleaning,
        IReadOnlyList<AddedTokens.Declared> declaredAdded)
    {
        if (modelMaxLength < 2)
            throw new ArgumentOutOfRangeException(nameof(modelMaxLength), modelMaxLength, "a sequence needs room for its start and end tokens");

        Dictionary<string, int> vocabulary = ReadVocabulary(vocabPath);
        List<string> merges = ReadMerges(mergesPath);
        int IdOf(string token, string role) => vocabulary.TryGetValue(token, out int id)
            ? id
            : throw new TokenizerFileException($"{vocabPath}: the {role} token '{token}' is not in the vocabulary; {TokenizerFileException.Fix}");
        int startOfText = IdOf(StartOfTextToken, "start");
        int endOfText = IdOf(EndOfTextToken, "end");
        AddedTokens added = AddedTokens.Resolve(declaredAdded, vocabulary, vocabPath);
        int pad = added.IdOf(padToken) ?? IdOf(padToken, "pad");

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(new BpeOptions(vocabulary)
            {
                Merges = merges,
                ByteLevel = true,
                EndOfWordSuffix = "</w>",
                Normalizer = cleaning switch
                {
                    ClipTextCleaning.Transformers => TransformersClipNormalizer.Instance,
                    ClipTextCleaning.OpenAi => OpenAiClipNormalizer.Instance,
                    _ => throw new ArgumentOutOfRangeException(nameof(cleaning), cleaning, "unknown CLIP text cleaning"),
                },
                PreTokenizer = ClipPreTokenizer.Instance,
                // The pre-tokenizer yields these literals as whole pieces; they map to their ids instead of being
                // byte-pair encoded, as in CLIP (a prompt that contains "<|endoftext|>" gets id 49407 there).
                SpecialTokens = new Dictionary<string, int> { [StartOfTextToken] = startOfText, [EndOfTextToken] = endOfText },
            });
        }
        catch (InvalidOperationException e)
        {
            throw new TokenizerFileException($"{mergesPath} does not fit {vocabPath}: {e.Message}; {TokenizerFileException.Fix}", e);
        }
        return new ClipTokenizer(bpe, added, cleaning, Math.Max(vocabulary.Count, added.MaxId + 1), startOfText, endOfText, pad, modelMaxLength);
    }

    /// <summary>The BPE token ids of <paramref name="prompt"/> alone: no start/end token, no truncation, no padding.</summary>
    public IReadOnlyList<int> EncodeToBpeIds(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (_added.Count == 0)
            return _bpe.EncodeToIds(prompt);
        // transformers cuts the added tokens out first and cleans and encodes each piece between them on its own.
        var ids = new List<int>();
        foreach (var (text, id) in _added.Split(prompt))
        {
            if (id is int added) ids.Add(added);
            else if (text.Length > 0) ids.AddRange(_bpe.EncodeToIds(text));
        }
        return ids;
    }

    /// <summary>
    /// How many BPE tokens of <paramref name="prompt"/> fall past the <see cref="ModelMaxLength"/> − 2 the text encoder
    /// reads (0 when it fits): <see cref="Encode"/> cuts them, as CLIP does, and diffusers warns of them.
    /// </summary>
    public int TokensCut(string prompt) => Math.Max(0, EncodeToBpeIds(prompt).Count - (ModelMaxLength - 2));

    /// <summary>
    /// The <see cref="ModelMaxLength"/> ids the text encoder takes for <paramref name="prompt"/>: start token, BPE
    /// tokens, end token, padding. A prompt too long is cut, and the last id kept is the end token, as in CLIP.
    /// </summary>
    public long[] Encode(string prompt)
    {
        var ids = new long[ModelMaxLength];
        Fill(prompt, ids);
        return ids;
    }

    /// <summary>Encodes every prompt: an int64 tensor [prompts.Count, <see cref="ModelMaxLength"/>] on the CPU.</summary>
    public Tensor EncodeBatch(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var ids = new long[prompts.Count * ModelMaxLength];
        for (int i = 0; i < prompts.Count; i++)
            Fill(prompts[i], ids.AsSpan(i * ModelMaxLength, ModelMaxLength));
        return torch.tensor(ids, new long[] { prompts.Count, ModelMaxLength }, ScalarType.Int64);
    }

    private void Fill(string prompt, Span<long> ids)
    {
        IReadOnlyList<int> bpe = EncodeToBpeIds(prompt);
        int kept = Math.Min(bpe.Count, ModelMaxLength - 2);
        ids[0] = StartOfTextId;
        for (int i = 0; i < kept; i++)
            ids[1 + i] = bpe[i];
        ids[1 + kept] = EndOfTextId;
        ids[(2 + kept)..].Fill(PadId);
    }

    private static Dictionary<string, int> ReadVocabulary(string path)
    {
        try
        {
            return JsonConvert.DeserializeObject<Dictionary<string, int>>(File.ReadAllText(path))
                ?? throw new TokenizerFileException($"{path}: expected a JSON object of token → id, found null; {TokenizerFileException.Fix}");
        }
        catch (JsonException e)
        {
            throw new TokenizerFileException($"{path}: expected a JSON object of token → id: {e.Message}; {TokenizerFileException.Fix}", e);
        }
    }

    private static List<string> ReadMerges(string path)
    {
        if (!File.Exists(path))
            throw new TokenizerFileException($"{path} is missing: a CLIP tokenizer needs merges.txt beside vocab.json; {TokenizerFileException.Fix}");
        var merges = new List<string>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)))
                continue;
            int space = line.IndexOf(' ');
            if (space <= 0 || space == line.Length - 1 || line.IndexOf(' ', space + 1) >= 0)
                throw new TokenizerFileException($"{path}:{lineNumber}: expected a merge \"a b\" (two tokens, one space), found '{line}'; {TokenizerFileException.Fix}");
            merges.Add(line);
        }
        return merges;
    }

    /// <summary>
    /// What <c>tokenizer_config.json</c>, <c>special_tokens_map.json</c> and <c>added_tokens.json</c> say about length,
    /// padding and tokens added beyond the vocabulary.
    /// </summary>
    private sealed record SpecialTokenSettings(int ModelMaxLength, string PadToken, IReadOnlyList<AddedTokens.Declared> Added)
    {
        public static SpecialTokenSettings Read(string folder)
        {
            int modelMaxLength = DefaultModelMaxLength;
            string padToken = EndOfTextToken;

            string configPath = Path.Combine(folder, "tokenizer_config.json");
            JObject? config = ReadObject(configPath);
            if (config is not null)
            {
                if (config["model_max_length"] is JToken length)
                    modelMaxLength = ParseLength(length, configPath);
                padToken = TokenContent(config["pad_token"], configPath) ?? padToken;
            }

            // transformers lets special_tokens_map.json override the config's special tokens, except in the newer
            // format that lists them in added_tokens_decoder. SD 2.x relies on it: its map pads with "!" (id 0).
            string mapPath = Path.Combine(folder, "special_tokens_map.json");
            if (config?["added_tokens_decoder"] is null && ReadObject(mapPath) is JObject map)
                padToken = TokenContent(map["pad_token"], mapPath) ?? padToken;

            return new SpecialTokenSettings(modelMaxLength, padToken, AddedTokens.Read(folder, config, configPath));
        }

        private static JObject? ReadObject(string path)
        {
            if (!File.Exists(path))
                return null;
            try
            {
                return JObject.Parse(File.ReadAllText(path));
            }
            catch (JsonException e)
            {
                throw new TokenizerFileException($"{path}: not a JSON object: {e.Message}; {TokenizerFileException.Fix}", e);
            }
        }

        private static int ParseLength(JToken token, string path)
        {
            // transformers writes 1e30 ("no limit") when it does not know; a CLIP text encoder has 77 positions.
            if (token.Type is JTokenType.Integer or JTokenType.Float && (double)token is double value
                && value == Math.Floor(value) && value is >= 2 and <= 1_000_000)
                return (int)value;
            throw new TokenizerFileException(
                $"{path}: model_max_length {token} is not a usable sequence length; CLIP text encoders take 77 tokens (set \"model_max_length\": 77)");
        }

        // A special token is written either as its text or as an AddedToken object {"content": ...}.
        private static string? TokenContent(JToken? token, string path) => token switch
        {
            null or { Type: JTokenType.Null } => null,
            { Type: JTokenType.String } => (string)token!,
            JObject added when added["content"] is { Type: JTokenType.String } content => (string)content!,
            _ => throw new TokenizerFileException($"{path}: pad_token must be a string or {{\"content\": \"...\"}}, found {token}; write it as a string (SD 1.x pads with \"<|endoftext|>\")"),
        };
    }
}
