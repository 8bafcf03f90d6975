namespace SdPipeline.Models.Shared;

/// <summary>
/// A diffusers model <c>config.json</c> this port cannot build: a malformed value, inconsistent lengths, or a
/// setting (such as <c>class_embed_type</c>) whose code path is not ported. The message names the file, key and value.
/// </summary>
public sealed class DiffusersConfigException(string message) : Exception(message);
