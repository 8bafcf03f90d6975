namespace SdPipeline.Tokenization;

/// <summary>The config names of <see cref="ClipTextCleaning"/> (<c>model.tokenizer_cleaning</c>).</summary>
public static class ClipTextCleanings
{
    /// <summary>The name of <see cref="ClipTextCleaning.Transformers"/>, the default.</summary>
    public const string Transformers = "transformers";

    /// <summary>The name of <see cref="ClipTextCleaning.OpenAi"/>.</summary>
    public const string OpenAi = "openai";

    /// <summary>The cleaning called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">Not a known name; the message lists them.</exception>
    public static ClipTextCleaning Parse(string name) => name switch
    {
        Transformers => ClipTextCleaning.Transformers,
        OpenAi => ClipTextCleaning.OpenAi,
        _ => throw new ArgumentException($"unknown tokenizer cleaning '{name}': expected {Transformers} or {OpenAi}", nameof(name)),
    };
}
