using Newtonsoft.Json.Linq;
using SdPipeline.Tests.Support;
using SdPipeline.Tokenization;

namespace SdPipeline.Tests.Tokenization;

public sealed class ClipTokenizerTests
{
    private const int StartOfText = 49406;
    private const int EndOfText = 49407;

    private static readonly Lazy<ClipTokenizer> s_sdTokenizer = new(() => ClipTokenizer.FromFolder(Path.Combine(RepoPaths.Fixtures, "tiny-sd")));

    private static readonly Lazy<ClipTokenizer> s_openAiTokenizer = new(() => ClipTokenizer.FromFolder(Path.Combine(RepoPaths.Fixtures, "tiny-sd"), ClipTextCleaning.OpenAi));

    private static ClipTokenizer SdTokenizer => s_sdTokenizer.Value;

    [Test]
    public void Encode_Should_MatchTransformersClipTokenizer_When_EncodingEveryFixturePrompt()
    {
        // Given the 341 prompts transformers' CLIPTokenizer (v4.57.6, as diffusers loads it) tokenized without ftfy,
        // which is what a plain install of diffusers and transformers runs (HTML entities, control characters, CJK)
        var failures = new List<string>();
        int lines = 0, differFromOpenAi = 0;
        foreach (string line in File.ReadLines(Path.Combine(RepoPaths.Fixtures, "clip-tokenizer", "tokenization_transformers.jsonl")))
        {
            var record = JObject.Parse(line);
            string prompt = record.Value<string>("prompt")!;
            long[] expected = record["input_ids_without_ftfy"]!.ToObject<long[]>()!;
            lines++;
            if (record.Value<bool>("without_ftfy_differs_from_openai")) differFromOpenAi++;

            // When the default tokenizer encodes it
            long[] actual = SdTokenizer.Encode(prompt);

            if (!actual.SequenceEqual(expected))
                failures.Add($"#{record["index"]} {JToken.FromObject(prompt).ToString(Newtonsoft.Json.Formatting.None)}:\n  expected [{string.Join(",", expected)}]\n  actual   [{string.Join(",", actual)}]");
        }

        // Then every line is identical, including the 52 where OpenAI's tokenizer gives other ids
        Assert.That(SdTokenizer.Cleaning, Is.EqualTo(ClipTextCleaning.Transformers));
        Assert.That(lines, Is.EqualTo(341));
        Assert.That(differFromOpenAi, Is.EqualTo(52));
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [TestCase("Tom &amp; Jerry", "tom & amp ; jerry")]
    [TestCase("a\u200bb \u00ADsoft", "ab soft")] // Cf characters dropped
    [TestCase("東京タワー", "東 京 タワー")] // ideographs become words of their own, kana do not
    [TestCase("e\u0301 \t\n A", "é a")] // NFC, white space folded
    [TestCase("x<|endoftext|>Y <|ENDOFTEXT|>", "x <|endoftext|> y <|endoftext|>")] // literals split off first (case-sensitive), then lower case
    public void Encode_Should_CleanAsTransformers_When_PromptHasEntitiesControlsOrIdeographs(string prompt, string cleanedAs)
    {
        // Given a prompt and the text transformers' BasicTokenizer path hands to CLIP's word split
        // When both are encoded by the default tokenizer
        // Then they give the same ids
        Assert.That(SdTokenizer.Encode(prompt), Is.EqualTo(s_openAiTokenizer.Value.Encode(cleanedAs)));
    }

    [Test]
    public void Encode_Should_MatchOpenAiClip_When_AskedForOpenAiCleaning()
    {
        // Given the 300 reference prompts (ids from OpenAI's SimpleTokenizer; ftfy-sensitive lines carry the
        // ids the same tokenizer gives without ftfy, which this port reproduces)
        var failures = new List<string>();
        int lines = 0, sensitive = 0;
        foreach (string line in File.ReadLines(Path.Combine(RepoPaths.Fixtures, "clip-tokenizer", "tokenization.jsonl")))
        {
            var record = JObject.Parse(line);
            string prompt = record.Value<string>("prompt")!;
            bool ftfySensitive = record.Value<bool>("ftfy_sensitive");
            long[] expected = record[ftfySensitive ? "ids_without_ftfy" : "ids"]!.ToObject<long[]>()!;
            lines++;
            if (ftfySensitive) sensitive++;

            // When the tokenizer asked for by name encodes it
            long[] actual = s_openAiTokenizer.Value.Encode(prompt);

            if (!actual.SequenceEqual(expected))
                failures.Add($"#{record["index"]} {JToken.FromObject(prompt).ToString(Newtonsoft.Json.Formatting.None)}:\n  expected [{string.Join(",", expected)}]\n  actual   [{string.Join(",", actual)}]");
        }

        // Then every line is identical
        Assert.That(lines, Is.EqualTo(300));
        Assert.That(sensitive, Is.EqualTo(9));
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [TestCase(75, 0)]
    [TestCase(80, 5)]
    public void TokensCut_Should_CountWhatEncodeLeavesOut(int words, int cut)
    {
        string prompt = string.Join(" ", Enumerable.Repeat("cat", words));

        Assert.That(SdTokenizer.TokensCut(prompt), Is.EqualTo(cut));
        Assert.That(SdTokenizer.Encode(prompt), Is.EqualTo(SdTokenizer.Encode(string.Join(" ", Enumerable.Repeat("cat", 75)))), "what is cut is what the encoder never sees");
    }

    [Test]
    public void FromFolder_Should_ReadLengthAndPadding_When_GivenSdModelFolder()
    {
        var tokenizer = SdTokenizer;

        Assert.That(tokenizer.ModelMaxLength, Is.EqualTo(77));
        Assert.That(tokenizer.VocabularySize, Is.EqualTo(49408));
        Assert.That((tokenizer.StartOfTextId, tokenizer.EndOfTextId, tokenizer.PadId), Is.EqualTo((StartOfText, EndOfText, EndOfText)));
    }

    [Test]
    public void Encode_Should_KeepEndTokenLast_When_PromptIsLongerThan77Tokens()
    {
        // Given a prompt of 100 words, each one token
        string prompt = string.Join(" ", Enumerable.Repeat("cat", 100));

        // When it is encoded
        long[] ids = SdTokenizer.Encode(prompt);

        // Then it is cut to 77 with the start token first and the end token last
        Assert.That(SdTokenizer.EncodeToBpeIds(prompt), Has.Count.EqualTo(100));
        Assert.That(ids, Has.Length.EqualTo(77));
        Assert.That(ids[0], Is.EqualTo(StartOfText));
        Assert.That(ids[1..76], Is.All.EqualTo(2368)); // "cat</w>"
        Assert.That(ids[76], Is.EqualTo(EndOfText));
    }

    [Test]
    public void Encode_Should_GiveEndOfTextId_When_PromptContainsTheSpecialTokenLiteral()
    {
        long[] ids = SdTokenizer.Encode("a <|endoftext|> b");

        Assert.That(ids[..5], Is.EqualTo(new long[] { StartOfText, 320, EndOfText, 321, EndOfText }));
    }

    [Test]
    public void Encode_Should_PadWithEndOfText_When_PromptIsEmpty()
    {
        long[] ids = SdTokenizer.Encode("");

        Assert.That(ids[0], Is.EqualTo(StartOfText));
        Assert.That(ids[1..], Is.All.EqualTo(EndOfText));
    }

    [Test]
    public void EncodeBatch_Should_StackSequences_When_GivenSeveralPrompts()
    {
        string[] prompts = ["a photo of a cat", "", "a red circle on a blue background"];

        using var batch = SdTokenizer.EncodeBatch(prompts);

        Assert.That(batch.shape, Is.EqualTo(new long[] { 3, 77 }));
        Assert.That(batch.dtype, Is.EqualTo(TorchSharp.torch.ScalarType.Int64));
        for (int i = 0; i < prompts.Length; i++)
            Assert.That(batch[i].data<long>().ToArray(), Is.EqualTo(SdTokenizer.Encode(prompts[i])));
    }

    [Test]
    public void FromFolder_Should_PadWithSpecialTokensMapToken_When_MapOverridesConfig()
    {
        // Given SD 2.x's arrangement: the config says <|endoftext|>, special_tokens_map.json says "!"
        using var temp = new TempFolder();
        CharacterVocabulary.WriteTo(temp.Path);
        File.WriteAllText(temp.File("special_tokens_map.json"), """{ "pad_token": "!" }""");

        // When it is loaded
        var tokenizer = ClipTokenizer.FromFolder(temp.Path);

        // Then the map's pad token wins, as in transformers
        Assert.That(tokenizer.PadId, Is.EqualTo(0));
        Assert.That(tokenizer.Encode("a")[^1], Is.EqualTo(0));
    }

    [Test]
    public void FromFolder_Should_NameTheFolder_When_NoVocabularyIsThere()
    {
        using var temp = new TempFolder();

        // An error the CLI prints as a message (exit 1), not a FileNotFoundException with a stack trace
        var error = Assert.Throws<TokenizerFileException>(() => ClipTokenizer.FromFolder(temp.Path))!;

        Assert.That(error.Message, Does.Contain(temp.Path).And.Contain("vocab.json"));
    }

    [Test]
    public void FromFolder_Should_NameTheFileAndTheFix_When_MergesAreMissing()
    {
        // A model folder copied or downloaded in part: its tokenizer has vocab.json but no merges.txt
        using var temp = new TempFolder();
        File.Copy(Path.Combine(RepoPaths.Fixtures, "clip-tokenizer", "vocab.json"), temp.File("vocab.json"));

        var error = Assert.Throws<TokenizerFileException>(() => ClipTokenizer.FromFolder(temp.Path))!;

        Assert.That(error.Message, Does.Contain(temp.File("merges.txt")).And.Contain("is missing").And.Contain("copy the model's tokenizer folder again"));
    }

    [Test]
    public void FromFolder_Should_NameFileAndLine_When_MergeLineIsMalformed()
    {
        using var temp = new TempFolder();
        CharacterVocabulary.WriteTo(temp.Path);
        File.WriteAllText(temp.File("merges.txt"), "#version: 0.2\na b c\n");

        var error = Assert.Throws<TokenizerFileException>(() => ClipTokenizer.FromFolder(temp.Path))!;

        Assert.That(error.Message, Does.Contain("merges.txt:2").And.Contain("a b c"));
    }

    [Test]
    public void FromFolder_Should_RefuseHugeLength_When_ConfigSaysNoLimit()
    {
        using var temp = new TempFolder();
        CharacterVocabulary.WriteTo(temp.Path);
        File.WriteAllText(temp.File("tokenizer_config.json"), """{ "model_max_length": 1e30 }""");

        var error = Assert.Throws<TokenizerFileException>(() => ClipTokenizer.FromFolder(temp.Path))!;

        Assert.That(error.Message, Does.Contain("tokenizer_config.json").And.Contain("model_max_length").And.Contain("77"));
    }

    // A tokenizer folder as diffusers' textual_inversion.py saves it (--save_as_full_pipeline): SD's files plus one token
    // added beyond the 49408 of vocab.json.
    private static string TextualInversionTokenizer(TempFolder temp)
    {
        foreach (string file in Directory.EnumerateFiles(Path.Combine(RepoPaths.Fixtures, "tiny-sd", "tokenizer")))
            File.Copy(file, temp.File(Path.GetFileName(file)));
        File.WriteAllText(temp.File("added_tokens.json"), """{ "<cat-toy>": 49408 }""");
        return temp.Path;
    }

    [TestCase("a <cat-toy> on a mat", "a", "on a mat")]
    [TestCase("A<cat-toy>s", "A", "s")]
    public void Encode_Should_GiveTheAddedTokenItsId_When_TheFolderAddsATextualInversionToken(string prompt, string before, string after)
    {
        // Given a tokenizer folder whose added_tokens.json adds <cat-toy> = 49408
        using var temp = new TempFolder();
        var tokenizer = ClipTokenizer.FromFolder(TextualInversionTokenizer(temp));

        // When a prompt naming it is encoded
        long[] ids = tokenizer.Encode(prompt);

        // Then, as transformers' tokenize() does, the literal is cut out before any clean-up and becomes 49408, and the
        // text on each side is cleaned and encoded on its own: [start] + before + [49408] + after + [end], padded
        long[] expected = [StartOfText, .. SdTokenizer.EncodeToBpeIds(before).Select(i => (long)i), 49408,
            .. SdTokenizer.EncodeToBpeIds(after).Select(i => (long)i), EndOfText];
        Assert.That(ids[..expected.Length], Is.EqualTo(expected));
        Assert.That(ids[expected.Length..], Is.All.EqualTo(EndOfText));
        Assert.That(tokenizer.VocabularySize, Is.EqualTo(49409));
    }

    [Test]
    public void Encode_Should_MatchTheAddedTokenCaseSensitively()
    {
        using var temp = new TempFolder();
        var tokenizer = ClipTokenizer.FromFolder(TextualInversionTokenizer(temp));

        // transformers' trie matches the literal as written; another spelling is ordinary text
        Assert.That(tokenizer.Encode("a <CAT-TOY>"), Is.EqualTo(SdTokenizer.Encode("a <CAT-TOY>")));
        Assert.That(tokenizer.Encode("a <CAT-TOY>"), Does.Not.Contain(49408L));
    }

    [Test]
    public void FromFolder_Should_ReadAddedTokensDecoder_InsteadOfAddedTokensJson_When_TheConfigHasIt()
    {
        // Given the newer format: tokenizer_config.json lists the added tokens (here with the start and end tokens, as
        // transformers writes them), and a stale added_tokens.json that from_pretrained then never reads
        using var temp = new TempFolder();
        TextualInversionTokenizer(temp);
        File.WriteAllText(temp.File("added_tokens.json"), """{ "<dog>": 49408 }""");
        File.WriteAllText(temp.File("tokenizer_config.json"), """
            {
              "added_tokens_decoder": {
                "49406": { "content": "<|startoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": true },
                "49407": { "content": "<|endoftext|>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": true },
                "49408": { "content": "<cat-toy>", "lstrip": false, "normalized": true, "rstrip": false, "single_word": false, "special": false }
              },
              "model_max_length": 77,
              "pad_token": "<|endoftext|>",
              "tokenizer_class": "CLIPTokenizer"
            }
            """);

        var tokenizer = ClipTokenizer.FromFolder(temp.Path);

        Assert.That(tokenizer.Encode("<cat-toy>")[..3], Is.EqualTo(new long[] { StartOfText, 49408, EndOfText }));
        Assert.That(tokenizer.Encode("<dog>"), Is.EqualTo(SdTokenizer.Encode("<dog>")));
    }

    [TestCase("""{ "<cat-toy>": 320 }""", "320")] // an id vocab.json gives "a</w>"
    [TestCase("""{ "a</w>": 49408 }""", "49408")] // a vocabulary token moved to another id
    public void FromFolder_Should_NameTheFile_When_AnAddedTokenContradictsTheVocabulary(string addedTokens, string id)
    {
        using var temp = new TempFolder();
        TextualInversionTokenizer(temp);
        File.WriteAllText(temp.File("added_tokens.json"), addedTokens);

        var error = Assert.Throws<TokenizerFileException>(() => ClipTokenizer.FromFolder(temp.Path))!;

        Assert.That(error.Message, Does.Contain("added_tokens.json").And.Contain(id).And.Contain("vocab.json"));
    }
}
